"""The package registers with Airflow as a provider and as a plugin, with a valid provider description."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from airflow_integrity.get_provider_info import get_provider_info

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _import_dotted(path: str):  # type: ignore[no-untyped-def]
    module, _, attr = path.rpartition(".")
    return getattr(import_module(module), attr)


@pytest.mark.unit
def test_provider_info_validates_against_airflows_schema() -> None:
    import airflow
    import jsonschema

    schema_path = Path(airflow.__file__).with_name("provider_info.schema.json")
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


@pytest.mark.unit
def test_every_class_named_in_provider_info_imports() -> None:
    info = get_provider_info()
    for entry in info["connection-types"]:
        assert _import_dotted(entry["hook-class-name"]).conn_type == entry["connection-type"]
    for module in info["hooks"][0]["python-modules"]:
        import_module(module)
    for cli in info["cli"]:
        commands = _import_dotted(cli)()
        assert [c.name for c in commands] == ["integrity"]
    for plugin in info["plugins"]:
        assert _import_dotted(plugin["plugin-class"]).name == plugin["name"]
    assert set(info["config"]["integrity"]["options"]) >= {"conn_id", "sqlite_path", "auto_migrate"}


@pytest.mark.integration
def test_airflow_lists_the_provider_and_the_plugin() -> None:
    providers = subprocess.run(
        [AIRFLOW, "providers", "list", "-o", "json"], capture_output=True, text=True, timeout=180
    )
    assert providers.returncode == 0, providers.stderr
    listed = {p["package_name"] for p in json.loads(providers.stdout)}
    assert "airflow-integrity" in listed
    plugins = subprocess.run([AIRFLOW, "plugins", "-o", "json"], capture_output=True, text=True, timeout=180)
    assert plugins.returncode == 0, plugins.stderr
    integrity = [p for p in json.loads(plugins.stdout) if p["name"] == "integrity"]
    assert len(integrity) == 1
    assert "/integrity" in str(integrity[0]["fastapi_apps"])
