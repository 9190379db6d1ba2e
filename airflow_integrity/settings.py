"""The ``[integrity]`` configuration section, read with the defaults the provider info declares (its ``config``
section is the one place they are written; ``airflow config list`` shows the same)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SECTION = "integrity"


def declared_defaults() -> dict[str, str]:
    """The default of every ``[integrity]`` option, as the provider info declares it to Airflow."""
    from airflow_integrity.get_provider_info import get_provider_info

    options = get_provider_info()["config"][SECTION]["options"]
    return {name: str(option["default"]) for name, option in options.items()}


_DEFAULTS = declared_defaults()
DEFAULT_CONN_ID = _DEFAULTS["conn_id"]


def _conf():  # type: ignore[no-untyped-def]
    from airflow_integrity.compat import conf

    return conf


def airflow_home() -> Path:
    """Return AIRFLOW_HOME as Airflow resolves it."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


@dataclass(frozen=True)
class IntegritySettings:
    """The values of the ``[integrity]`` section."""

    conn_id: str
    sqlite_path: Path
    auto_migrate: bool
    sqlite_busy_timeout: float
    audit_on_store_error: str
    spool_dir: Path
    checkpoint_key_conn_id: str
    checkpoint_interval: float
    preload_validation: bool
    audit_listeners: bool
    completeness_interval: float
    quarantine_dir: str
    approval_settle_seconds: float


_OPTIONS = tuple(_DEFAULTS)
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
    d = _DEFAULTS

    def text(option: str) -> str:
        return (conf.get(SECTION, option, fallback=d[option]) or "").strip()

    def flag(option: str) -> bool:
        return bool(conf.getboolean(SECTION, option, fallback=d[option].lower() == "true"))

    def number(option: str) -> float:
        return float(conf.getfloat(SECTION, option, fallback=float(d[option])))

    raw_path, spool = text("sqlite_path"), text("spool_dir")
    return IntegritySettings(
        conn_id=text("conn_id") or DEFAULT_CONN_ID,
        sqlite_path=Path(raw_path).expanduser() if raw_path else airflow_home() / "integrity.db",
        auto_migrate=flag("auto_migrate"),
        sqlite_busy_timeout=number("sqlite_busy_timeout"),
        audit_on_store_error=_policy(text("audit_on_store_error")),
        spool_dir=Path(spool).expanduser() if spool else airflow_home() / "integrity-spool",
        checkpoint_key_conn_id=text("checkpoint_key_conn_id"),
        checkpoint_interval=number("checkpoint_interval"),
        preload_validation=flag("preload_validation"),
        audit_listeners=flag("audit_listeners"),
        completeness_interval=number("completeness_interval"),
        quarantine_dir=text("quarantine_dir"),
        approval_settle_seconds=max(0.0, number("approval_settle_seconds")),
    )


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (``False`` when unset): what every deferrable operator and sensor of
    the package defaults to, as Airflow's own do."""
    return bool(_conf().getboolean("operators", "default_deferrable", fallback=False))


AUDIT_POLICIES = ("fail", "spool")


def _policy(value: str | None) -> str:
    policy = (value or "fail").strip().lower()
    if policy not in AUDIT_POLICIES:
        raise ValueError(
            f"[integrity] audit_on_store_error = {value!r} is not a policy; use 'fail' (the task fails rather "
            "than run unaudited) or 'spool' (events wait in a durable local spool until the store is back)."
        )
    return policy
