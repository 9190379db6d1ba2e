"""docker-compose.yaml: valid for Compose, and the topology deploy/topology.toml describes (the one the native
end-to-end clusters run), with the integrity store as its own database reached by two roles.

There is no Docker engine here: the file is checked by Compose itself (``docker-compose config``, Debian's
package) and read, service by service, against the description; the image is not built.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e.cluster import COMPONENT_COMMANDS
from tests.tools import system_program

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = tomllib.loads((REPO / "deploy" / "topology.toml").read_text(encoding="utf-8"))
COMPONENTS = TOPOLOGY["components"]
STORE = TOPOLOGY["store"]
COMPOSE_TEXT = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
# Compose interpolates ${NAME:-default}: read the file as Compose would with the defaults and a signing secret.
ENV = {"INTEGRITY_SIGNING_SECRET": "a-secret-for-the-test"}


def _interpolated(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return ENV.get(name, default)

    return re.sub(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(:?[-?]([^}]*))?\}", value, text)


COMPOSE = yaml.safe_load(_interpolated(COMPOSE_TEXT))
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = {name for name, service in SERVICES.items() if service.get("build") == "."}


def test_every_airflow_component_is_a_service_running_the_described_command() -> None:
    assert {c["service"] for c in COMPONENTS.values()} | {"airflow-init"} == AIRFLOW_SERVICES
    for name, component in COMPONENTS.items():
        service = SERVICES[component["service"]]
        assert service["command"].split() == component["command"], name
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "always", name
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    assert {"postgres", "redis"} <= set(SERVICES)
    assert all(SERVICES[s]["healthcheck"]["test"] for s in ("postgres", "redis"))


def test_the_native_clusters_run_the_same_commands() -> None:
    for name, command in COMPONENT_COMMANDS.items():
        assert list(command[: len(COMPONENTS[name]["command"])]) == COMPONENTS[name]["command"], name


def test_workers_scale() -> None:
    for component in COMPONENTS.values():
        if component.get("scalable"):
            service = SERVICES[component["service"]]
            assert "container_name" not in service and "ports" not in service
            assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_components_reach_the_store_in_its_own_database_as_the_runtime_role_and_never_migrate() -> None:
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        env = SERVICES[name]["environment"]
        store = urlsplit(env["AIRFLOW_CONN_INTEGRITY_DEFAULT"])
        metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert store.username == STORE["runtime_role"] and store.path == f"/{STORE['database']}", name
        assert metadata.path != store.path, name
        assert env["AIRFLOW__INTEGRITY__AUTO_MIGRATE"] == "False", name
        assert "AIRFLOW_CONN_INTEGRITY_OWNER" not in env, name


def test_init_migrates_the_store_as_its_owner_and_checks_the_runtime_roles_rights() -> None:
    init = SERVICES["airflow-init"]
    owner = urlsplit(init["environment"]["AIRFLOW_CONN_INTEGRITY_OWNER"])
    assert owner.username == STORE["owner_role"] and owner.path == f"/{STORE['database']}"
    script = "\n".join(init["command"])
    roles = f"--conn-id {STORE['owner_conn_id']} --runtime-role {STORE['runtime_role']}"
    assert f"airflow integrity db migrate {roles}" in script
    assert f"airflow integrity db check {roles}" in script
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_postgres_creates_the_stores_roles_and_database_on_first_start() -> None:
    postgres = SERVICES["postgres"]
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    script = (REPO / "deploy" / "postgres" / "10-integrity-store.sh").read_text(encoding="utf-8")
    assert os.access(REPO / "deploy" / "postgres" / "10-integrity-store.sh", os.X_OK)
    for role in (STORE["owner_role"], STORE["runtime_role"]):
        assert f"CREATE ROLE {role} LOGIN" in script
    assert f"CREATE DATABASE {STORE['database']} OWNER {STORE['owner_role']}" in script


def test_the_image_is_built_from_this_repository_with_airflows_constraints() -> None:
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_TEXT
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$", dockerfile, re.M)
    assert "constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt" in dockerfile
    # The image's Airflow is the one the project is developed and tested against.
    tested = re.search(r"^apache-airflow==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert tested and f"ARG AIRFLOW_VERSION={tested.group(1)}" in dockerfile
    assert all("/opt/airflow/dags" in " ".join(SERVICES[s]["volumes"]) for s in AIRFLOW_SERVICES)


def test_the_signing_key_comes_from_the_environment_and_is_required() -> None:
    assert "${INTEGRITY_SIGNING_SECRET:?" in COMPOSE_TEXT
    env = SERVICES["airflow-scheduler"]["environment"]
    assert '"password": "a-secret-for-the-test"' in env["AIRFLOW_CONN_AUDIT_SIGNING_KEY"]
    assert env["AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID"] == "audit_signing_key"


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    program = system_program("docker-compose")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INTEGRITY_", "AIRFLOW"))}
    return subprocess.run(
        [program, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yaml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_accepts_the_file_and_reads_it_as_this_test_does() -> None:
    result = _compose("config", env=ENV)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(SERVICES)
    for name in AIRFLOW_SERVICES:
        assert resolved["services"][name]["environment"] == {
            k: str(v) for k, v in SERVICES[name]["environment"].items()
        }, name


def test_compose_refuses_to_start_without_the_signing_key_and_says_where_to_set_it() -> None:
    result = _compose("config", env={})
    assert result.returncode != 0
    assert "set INTEGRITY_SIGNING_SECRET in .env" in result.stderr


def test_workers_preload_and_the_spool_outlives_a_container() -> None:
    """Every Airflow service uses the package's Celery configuration (workers load GX once, before their pools
    fork) and keeps the audit spool on a volume of the host."""
    from airflow_integrity.executors import celery

    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        module, _, attribute = env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"].rpartition(".")
        assert module == celery.__name__ and isinstance(getattr(celery, attribute), dict), name
        mounts = {volume.split(":")[1] for volume in SERVICES[name]["volumes"]}
        assert env["AIRFLOW__INTEGRITY__SPOOL_DIR"] in mounts, name
