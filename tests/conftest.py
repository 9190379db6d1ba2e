"""Shared fixtures: an isolated AIRFLOW_HOME, a real PostgreSQL server, and stores on both backends."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Airflow reads its configuration when first imported: isolate it before any test module imports it.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="integrity-tests-home-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_HOME / 'airflow.db'}"
# dag.test() runs only DAGs it finds in a configured bundle: the example DAGs, and the test DAGs of
# tests/dag_fixtures/ (small DAGs that exercise one operator each).
_REPO = Path(__file__).resolve().parents[1]
_LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
# Airflow's own example DAGs, a workload nobody here wrote, for the audit-completeness tests: a bundle of their
# files alone (dag.test() syncs its whole bundle, and the folders hold DAGs that need plugins or other providers),
# found without importing Airflow, which must not read its configuration before it is set above.
AIRFLOW_EXAMPLES = {
    "example_branch_operator": "providers/standard/example_dags",
    "example_short_circuit_operator": "providers/standard/example_dags",
    "example_bash_operator": "providers/standard/example_dags",
    "example_skip_dag": "example_dags",
    "example_dynamic_task_mapping": "example_dags",
    "example_setup_teardown": "example_dags",
    "example_task_group": "example_dags",
    "example_xcom": "example_dags",
}
AIRFLOW_EXAMPLES_BUNDLE = _SESSION_HOME / "airflow-examples"


def _airflow_examples() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    AIRFLOW_EXAMPLES_BUNDLE.mkdir(exist_ok=True)
    for dag_id, folder in AIRFLOW_EXAMPLES.items():
        (AIRFLOW_EXAMPLES_BUNDLE / f"{dag_id}.py").symlink_to(package / folder / f"{dag_id}.py")
    return AIRFLOW_EXAMPLES_BUNDLE


os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {"name": "dags-folder", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(_REPO / "dags")}},
        {"name": "test-dags", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(_REPO / "tests/dag_fixtures")}},
        {"name": "airflow-examples", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(_airflow_examples())}},
    ]
)
for _name in list(os.environ):
    if _name.startswith(("AIRFLOW_CONN_", "AIRFLOW__INTEGRITY__")):
        del os.environ[_name]

import pytest  # noqa: E402

from tests.pg import PostgresServer, start_postgres  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server: ``INTEGRITY_TEST_PG_URI`` when set, else one started from the wheel."""
    with start_postgres(Path(tempfile.mkdtemp(prefix="integrity-tests-pg-"))) as server:
        yield server


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; returns its libpq URI."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    try:
        yield pg_server.uri(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store on each backend (real SQLite file, real PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'integrity.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    """A migrated ``IntegrityStore`` on each backend."""
    from airflow_integrity.store import IntegrityStore, StoreLocation

    integrity_store = IntegrityStore(StoreLocation.from_url(store_url, source="test store"))
    integrity_store.migrate()
    yield integrity_store
    integrity_store.engine.dispose()


@pytest.fixture
def store_conn_env(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the ``integrity_default`` connection at the test store through the environment."""
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    return store_url


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's own metadata database (SQLite), migrated once per session, for ``dag.test()``."""
    from airflow.utils import db

    db.resetdb()
    return _SESSION_HOME


@pytest.fixture(autouse=True)
def _own_audit_spool(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test spools into a folder of its own: events a test's outage spooled are never replayed into
    another test's store."""
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))
