"""The ``[integrity]`` configuration section, read with the same defaults the provider info declares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONN_ID = "integrity_default"
SECTION = "integrity"


def _conf():  # type: ignore[no-untyped-def]
    from airflow.sdk import conf

    return conf


def airflow_home() -> Path:
    """Return AIRFLOW_HOME as Airflow resolves it."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


@dataclass(frozen=True)
class IntegritySettings:
    """Values of the ``[integrity]`` section that the store needs."""

    conn_id: str
    sqlite_path: Path
    auto_migrate: bool
    sqlite_busy_timeout: float
    audit_on_store_error: str
    spool_dir: Path
    checkpoint_key_conn_id: str = ""
    checkpoint_interval: float = 3600.0
    preload_validation: bool = True
    audit_listeners: bool = True
    completeness_interval: float = 60.0


_OPTIONS = (
    "conn_id",
    "sqlite_path",
    "auto_migrate",
    "sqlite_busy_timeout",
    "audit_on_store_error",
    "spool_dir",
    "checkpoint_key_conn_id",
    "checkpoint_interval",
    "preload_validation",
    "audit_listeners",
    "completeness_interval",
)
# What can change the section while a process runs: the environment variables Airflow reads it from (none of
# its options is sensitive, so no _CMD or _SECRET variant applies).
_ENVIRONMENT = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", *(f"AIRFLOW__{SECTION.upper()}__{o.upper()}" for o in _OPTIONS))
_loaded: tuple[tuple[str | None, ...], IntegritySettings] | None = None


def load_settings() -> IntegritySettings:
    """Read the ``[integrity]`` section (environment variables ``AIRFLOW__INTEGRITY__*`` included).

    Read once per process and again whenever one of those variables (or ``AIRFLOW_HOME``) changes: hooks are
    made per audit event, and reading Airflow's configuration costs a good share of recording one.
    """
    global _loaded
    environment = tuple(map(os.environ.get, _ENVIRONMENT))
    loaded = _loaded
    if loaded is not None and loaded[0] == environment:
        return loaded[1]
    settings = _read_settings()
    _loaded = (environment, settings)
    return settings


def _read_settings() -> IntegritySettings:
    conf = _conf()
    raw_path = conf.get(SECTION, "sqlite_path", fallback="") or ""
    spool = conf.get(SECTION, "spool_dir", fallback="") or ""
    return IntegritySettings(
        conn_id=conf.get(SECTION, "conn_id", fallback=DEFAULT_CONN_ID) or DEFAULT_CONN_ID,
        sqlite_path=Path(raw_path).expanduser() if raw_path else airflow_home() / "integrity.db",
        auto_migrate=conf.getboolean(SECTION, "auto_migrate", fallback=True),
        sqlite_busy_timeout=conf.getfloat(SECTION, "sqlite_busy_timeout", fallback=60.0),
        audit_on_store_error=_policy(conf.get(SECTION, "audit_on_store_error", fallback="fail")),
        spool_dir=Path(spool).expanduser() if spool else airflow_home() / "integrity-spool",
        checkpoint_key_conn_id=(conf.get(SECTION, "checkpoint_key_conn_id", fallback="") or "").strip(),
        checkpoint_interval=conf.getfloat(SECTION, "checkpoint_interval", fallback=3600.0),
        preload_validation=conf.getboolean(SECTION, "preload_validation", fallback=True),
        audit_listeners=conf.getboolean(SECTION, "audit_listeners", fallback=True),
        completeness_interval=conf.getfloat(SECTION, "completeness_interval", fallback=60.0),
    )


AUDIT_POLICIES = ("fail", "spool")


def _policy(value: str | None) -> str:
    policy = (value or "fail").strip().lower()
    if policy not in AUDIT_POLICIES:
        raise ValueError(
            f"[integrity] audit_on_store_error = {value!r} is not a policy; use 'fail' (the task fails rather "
            "than run unaudited) or 'spool' (events wait in a durable local spool until the store is back)."
        )
    return policy
