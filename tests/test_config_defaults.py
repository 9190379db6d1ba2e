"""The ``[integrity]`` defaults are written once (the provider info's ``config`` section): ``airflow config list``
shows them, and the settings the code reads on an unconfigured installation are those values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_integrity.get_provider_info import get_provider_info
from airflow_integrity.settings import declared_defaults, default_deferrable, load_settings

pytestmark = pytest.mark.unit


def _listed(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__INTEGRITY__", "AIRFLOW_CONFIG"))}
    env["AIRFLOW_HOME"] = str(home)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "config",
            "list",
            "--section",
            "integrity",
            "--show-values",
            "--color",
            "off",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {}
    for line in done.stdout.splitlines():
        if " = " in line and not line.startswith("#"):
            name, _, value = line.partition(" = ")
            listed[name.strip()] = value.strip()
    return listed


def test_airflow_config_list_shows_what_the_code_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listed = _listed(tmp_path)
    assert listed == declared_defaults()

    for name in list(os.environ):
        if name.startswith("AIRFLOW__INTEGRITY__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.conn_id == listed["conn_id"]
    assert settings.auto_migrate is (listed["auto_migrate"] == "True")
    assert settings.sqlite_busy_timeout == float(listed["sqlite_busy_timeout"])
    assert settings.audit_on_store_error == listed["audit_on_store_error"]
    assert settings.checkpoint_key_conn_id == listed["checkpoint_key_conn_id"]
    assert settings.checkpoint_interval == float(listed["checkpoint_interval"])
    assert settings.preload_validation is (listed["preload_validation"] == "True")
    assert settings.audit_listeners is (listed["audit_listeners"] == "True")
    assert settings.completeness_interval == float(listed["completeness_interval"])
    assert settings.quarantine_dir == listed["quarantine_dir"]
    assert settings.approval_settle_seconds == float(listed["approval_settle_seconds"])
    # Empty paths mean "under AIRFLOW_HOME".
    assert listed["sqlite_path"] == "" and settings.sqlite_path == tmp_path / "integrity.db"
    assert listed["spool_dir"] == "" and settings.spool_dir == tmp_path / "integrity-spool"


def test_every_declared_option_is_read_and_every_read_option_declared() -> None:
    from airflow_integrity.settings import IntegritySettings

    declared = set(get_provider_info()["config"]["integrity"]["options"])
    assert declared == set(IntegritySettings.__dataclass_fields__)


def test_default_deferrable_follows_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert default_deferrable() is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert default_deferrable() is False
