"""The hook resolves the store from Airflow connections, falls back to embedded SQLite, and explains errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import StoreConfigurationError, StoreUnavailableError

pytestmark = pytest.mark.integration


def test_without_a_connection_the_embedded_sqlite_store_under_airflow_home_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    hook = IntegrityCheckHook()
    store = hook.get_store()
    assert store.backend == "sqlite"
    assert Path(store.location.url.database) == tmp_path / "integrity.db"
    assert (tmp_path / "integrity.db").exists()
    assert store.describe().current


def test_configured_sqlite_path_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SQLITE_PATH", str(tmp_path / "nested" / "audit.db"))
    store = IntegrityCheckHook().get_store()
    assert store.location.url.database == str(tmp_path / "nested" / "audit.db")
    assert store.describe().current


def test_connection_from_environment_selects_that_store(store_conn_env: str):
    store = IntegrityCheckHook().get_store()
    expected = "sqlite" if store_conn_env.startswith("sqlite") else "postgresql"
    assert store.backend == expected
    ok, message = IntegrityCheckHook().test_connection()
    assert ok, message
    assert expected in message


def test_conn_id_from_config_is_used(pg_database: str, monkeypatch):
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CONN_ID", "audit_store")
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_STORE", pg_database)
    hook = IntegrityCheckHook()
    assert hook.integrity_conn_id == "audit_store"
    assert hook.get_store().backend == "postgresql"


def test_explicit_unknown_conn_id_is_an_error_naming_it():
    with pytest.raises(StoreConfigurationError, match="'no_such_store' is not defined"):
        IntegrityCheckHook(integrity_conn_id="no_such_store").get_store()


def test_wrong_host_names_the_connection_and_the_problem(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", "postgresql://u:pw@no-such-host.invalid:5432/integrity")
    with pytest.raises(StoreUnavailableError) as err:
        IntegrityCheckHook().get_store()
    message = str(err.value)
    assert "connection 'integrity_default'" in message
    assert "no-such-host.invalid" in message
    ok, reported = IntegrityCheckHook().test_connection()
    assert not ok and "no-such-host.invalid" in reported


def test_wrong_scheme_names_the_connection_and_the_supported_ones(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", "mysql://u:pw@db:3306/integrity")
    with pytest.raises(StoreConfigurationError) as err:
        IntegrityCheckHook().get_store()
    assert "connection 'integrity_default'" in str(err.value)
    assert "'mysql'" in str(err.value)


def test_schema_check_without_auto_migrate_tells_to_run_migrate(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUTO_MIGRATE", "False")
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'fresh.db'}")
    from airflow_integrity.store import SchemaNotCurrentError

    with pytest.raises(SchemaNotCurrentError, match="airflow integrity db migrate"):
        IntegrityCheckHook().get_store()
    ok, message = IntegrityCheckHook().test_connection()
    assert ok and "run `airflow integrity db migrate`" in message


def test_hook_metadata_matches_provider_info():
    from airflow_integrity.get_provider_info import get_provider_info

    entry = get_provider_info()["connection-types"][0]
    assert entry["connection-type"] == IntegrityCheckHook.conn_type == "integrity"
    assert entry["hook-class-name"] == f"{IntegrityCheckHook.__module__}.{IntegrityCheckHook.__name__}"
    assert IntegrityCheckHook.default_conn_name == "integrity_default"
    behaviour = IntegrityCheckHook.get_ui_field_behaviour()
    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    assert os.environ.get("AIRFLOW_CONN_INTEGRITY_DEFAULT") is None


def test_settings_and_connection_are_reused_and_reread_when_their_variables_change(tmp_path, monkeypatch):
    from airflow_integrity.settings import load_settings

    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR", "spool")
    assert load_settings() is load_settings()  # read once while nothing changes
    assert IntegrityCheckHook()._settings.audit_on_store_error == "spool"
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR", "fail")
    assert IntegrityCheckHook()._settings.audit_on_store_error == "fail"

    first, second = tmp_path / "first.db", tmp_path / "second.db"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{first}")
    assert IntegrityCheckHook().get_location().url.database == str(first)
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{second}")
    assert IntegrityCheckHook().get_location().url.database == str(second)


@pytest.mark.requirement("part11.11.10c")
def test_a_store_in_airflows_metadata_database_is_refused_naming_both(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`airflow db clean`, `reset` and `downgrade` act on the metadata database: the trail must not be in it."""
    from sqlalchemy.engine import make_url

    import airflow_integrity.hooks.integrity as integrity_module

    monkeypatch.setattr(integrity_module, "_locations", {})
    url = make_url(pg_database)
    # The same database written another way: another driver and the loopback address by another name.
    same = url.set(drivername="postgresql+psycopg", host="localhost" if url.host == "127.0.0.1" else url.host)
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", pg_database)
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", same.render_as_string(hide_password=False))
    with pytest.raises(StoreConfigurationError, match=r"is Airflow's metadata database") as refused:
        IntegrityCheckHook().get_store()
    assert "connection 'integrity_default'" in str(refused.value) and "CREATE DATABASE" in str(refused.value)

    # Another database of the same server is the store's own.
    monkeypatch.setattr(integrity_module, "_locations", {})
    other = url.set(database="airflow_metadata")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", other.render_as_string(hide_password=False))
    assert IntegrityCheckHook().get_location().backend == "postgresql"

    # SQLite: the same file, reached through a symbolic link.
    monkeypatch.setattr(integrity_module, "_locations", {})
    (tmp_path / "airflow.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "airflow.db")
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'link.db'}")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'airflow.db'}")
    with pytest.raises(StoreConfigurationError, match=r"is Airflow's metadata database"):
        IntegrityCheckHook().get_store()
