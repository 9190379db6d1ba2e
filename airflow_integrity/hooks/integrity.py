"""``IntegrityCheckHook``: the one door from Airflow code into the integrity store."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_integrity.settings import DEFAULT_CONN_ID, load_settings
from airflow_integrity.store import (
    IntegrityStore,
    StoreConfigurationError,
    StoreError,
    StoreLocation,
    StoreUnavailableError,
)
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent, AuditEventError, Recorded
from airflow_integrity.store.audit.spool import AuditSpool, DrainReport

if TYPE_CHECKING:
    from airflow_integrity.hooks.validation import ValidationRun
    from airflow_integrity.store.ledger.ledger import IdempotencyLedger
    from airflow_integrity.store.validation_results import StoredValidationResult


# Where a connection id led, per process: (conn id, its AIRFLOW_CONN_ variable, default SQLite path) ->
# (when resolved, location). Looking a connection up goes through Airflow's secrets backends (from a task,
# through its supervisor to the API server) and costs more than recording an audit event, and the listeners
# make a hook per event; so a resolution is reused for a while, and at once replaced when the variable changes.
_LOCATION_TTL = 30.0
_locations: dict[tuple[str, str | None, str], tuple[float, StoreLocation]] = {}


def _refuse_airflow_metadata_database(location: StoreLocation) -> None:
    """The store must not live in Airflow's metadata database, where Airflow's maintenance commands act."""
    from airflow_integrity.compat import conf

    try:
        metadata = conf.get("database", "sql_alchemy_conn", fallback="") or ""
    except Exception:
        return  # a component without a metadata database configured cannot be pointed at it
    if metadata and location.same_database_as(metadata):
        raise StoreConfigurationError(
            f"The integrity store ({location.source}: {location.display}) is Airflow's metadata database "
            "([database] sql_alchemy_conn). Keep it in a database of its own: `airflow db clean`, `db reset` "
            "and `db downgrade` act on the metadata database, and its users are Airflow's. Create one "
            "(CREATE DATABASE integrity, or another SQLite file) and point the connection at it."
        )


@lru_cache(maxsize=8)
def _spool(directory: Path) -> AuditSpool:
    return AuditSpool(directory)


class AuditUnavailableError(StoreUnavailableError):
    """An audit event could not be recorded and the policy forbids running unaudited."""


class IntegrityCheckHook(BaseHook):
    """Reach the integrity store named by an Airflow connection.

    The connection is a PostgreSQL connection (``postgresql://user:password@host:5432/database``), or of type
    ``integrity`` with extra ``{"backend": "postgresql"}`` (the default) or ``{"backend": "sqlite"}`` and the
    file path as host. When the configured connection (``[integrity] conn_id``) does not exist, the embedded
    SQLite store under ``AIRFLOW_HOME`` is used, so a single machine needs no set-up.

    Args:
        integrity_conn_id: Connection id; defaults to ``[integrity] conn_id`` (``integrity_default``).
    """

    conn_name_attr = "integrity_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "integrity"
    hook_name = "Integrity Store"

    def __init__(self, integrity_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = load_settings()
        self.integrity_conn_id = integrity_conn_id or self._settings.conn_id
        self._store: IntegrityStore | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form for a database location."""
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Database", "host": "Host (or SQLite file path)"},
            "placeholders": {
                "host": "postgres.internal or /var/lib/airflow/integrity.db",
                "schema": "integrity",
                "port": "5432",
                "extra": '{"backend": "postgresql", "sslmode": "require"}',
            },
        }

    def get_location(self) -> StoreLocation:
        """Resolve where the store lives from the connection, or the embedded SQLite default.

        A process reuses what it resolved for up to 30 seconds (at once re-resolved when the connection's
        ``AIRFLOW_CONN_*`` variable changes), so an edit of the connection in Airflow reaches a running
        scheduler or API server within that time.
        """
        key = (
            self.integrity_conn_id,
            os.environ.get(f"AIRFLOW_CONN_{self.integrity_conn_id.upper()}"),
            str(self._settings.sqlite_path),
        )
        known = _locations.get(key)
        if known is not None and time.monotonic() - known[0] < _LOCATION_TTL:
            return known[1]
        location = self._resolve_location()
        _refuse_airflow_metadata_database(location)
        _locations[key] = (time.monotonic(), location)
        return location

    def _resolve_location(self) -> StoreLocation:
        from airflow_integrity.compat import AirflowNotFoundException

        source = f"connection {self.integrity_conn_id!r}"
        try:
            conn = self.get_connection(self.integrity_conn_id)
        except AirflowNotFoundException:
            if self.integrity_conn_id != self._settings.conn_id:
                raise StoreConfigurationError(
                    f"The integrity store {source} is not defined. Create it (Admin > Connections, "
                    f"or AIRFLOW_CONN_{self.integrity_conn_id.upper()}) or leave the connection id "
                    "unset to use the configured store."
                ) from None
            return StoreLocation.sqlite(self._settings.sqlite_path)
        return StoreLocation.from_fields(
            source=source,
            conn_type=conn.conn_type,
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            schema=conn.schema,
            extra=conn.extra_dejson,
        )

    def get_store(self, *, ensure_schema: bool = True) -> IntegrityStore:
        """Return the store, with its schema checked (and migrated if ``[integrity] auto_migrate``)."""
        if self._store is None:
            self._store = IntegrityStore(self.get_location(), busy_timeout=self._settings.sqlite_busy_timeout)
        if ensure_schema:
            self._store.ensure_schema(auto_migrate=self._settings.auto_migrate)
        return self._store

    def get_conn(self) -> IntegrityStore:
        """Airflow's generic accessor: the store object."""
        return self.get_store()

    def test_connection(self) -> tuple[bool, str]:
        """Check that the store is reachable and report its schema revision."""
        try:
            status = self.get_store(ensure_schema=False).describe()
        except StoreError as exc:
            return False, str(exc)
        if not status.current:
            return True, (
                f"Reached {status.backend} store {status.location}; schema at {status.revision or 'none'}, "
                f"run `airflow integrity db migrate` to reach {status.head}."
            )
        return True, f"Reached {status.backend} store {status.location}, schema {status.revision}."

    # -- idempotency ledger ------------------------------------------------------------------------

    def get_ledger(self, namespace: str = "default") -> IdempotencyLedger:
        """The idempotency ledger of this store (close it, or use it as a context manager)."""
        from airflow_integrity.store.ledger.ledger import IdempotencyLedger

        return IdempotencyLedger(self.get_store(), namespace=namespace)

    # -- audit trail -------------------------------------------------------------------------------

    def record_event(self, event: AuditEvent, *, chain: bool = False, keep: bool = False) -> Recorded | None:
        """Record ``event`` in the audit trail, first replaying any spooled events in their order.

        The event is committed and on disk when this returns. It joins the hash chain in a batch with other
        events, within about a second (at once on SQLite); with ``chain=True`` (the end of a DAG run) it and
        every event recorded before it are chained before this returns.

        When the store cannot take the event (unreachable, misconfigured, its schema not current, or refusing
        the statement), ``[integrity] audit_on_store_error`` decides: ``fail`` raises ``AuditUnavailableError``
        naming the cause; ``spool`` writes the event durably to the local spool and returns ``None``. An event
        that is itself invalid raises ``AuditEventError`` and is never spooled. No event is dropped silently.

        Args:
            event: The event; it is given its ``event_id`` now if it has none, so that every attempt records it
                at most once.
            chain: Chain it, and everything recorded before it, before returning.
            keep: The step the event records has already happened (a task's end, a run's end): when the store
                cannot take it, spool it whatever the policy, rather than lose it.

        Returns:
            The receipt (``event_id``, ``recorded_at``; ``seq`` and ``hash`` once chained), or ``None`` when the
            event was spooled.
        """
        event = event.identified()
        attempted_at = datetime.now(UTC)
        spool = _spool(self._settings.spool_dir)
        try:
            log = AuditLog(self.get_store())
            if spool.has_lines():
                chain = self._drain_before(spool, log) or chain
            if chain:
                return log.append(event).receipt()
            return log.record(event)
        except AuditEventError:
            raise
        except StoreError as exc:
            self._spool_or_refuse(
                [event],
                exc,
                keep=keep,
                attempted_at=attempted_at,
                spool=spool,
                refused=(
                    f"Audit event {event.event_type!r} could not be recorded, so the step must not run unaudited"
                ),
            )
            self.log.warning(
                "Integrity store could not take audit event %s (%s); spooled to %s: %s",
                event.event_type,
                event.event_id,
                spool.path,
                exc,
            )
            return None

    def record_events(self, events: Sequence[AuditEvent], *, keep: bool = False) -> int:
        """Record several events at once, in their order (one statement), as :meth:`record_event` records one;
        return how many reached the store (0 when they were spooled)."""
        if not events:
            return 0
        events = [event.identified() for event in events]
        attempted_at = datetime.now(UTC)
        try:
            AuditLog(self.get_store()).record_many(events)
            return len(events)
        except AuditEventError:
            raise
        except StoreError as exc:
            self._spool_or_refuse(
                events,
                exc,
                keep=keep,
                attempted_at=attempted_at,
                spool=_spool(self._settings.spool_dir),
                refused=f"{len(events)} audit events could not be recorded",
            )
            self.log.warning("Integrity store could not take %d audit events; spooled: %s", len(events), exc)
            return 0

    def _spool_or_refuse(
        self,
        events: Sequence[AuditEvent],
        exc: StoreError,
        *,
        keep: bool,
        attempted_at: datetime,
        spool: AuditSpool,
        refused: str,
    ) -> None:
        """The store did not take ``events``: spool them (policy ``spool``, or ``keep``: their steps happened),
        or raise ``AuditUnavailableError`` beginning with ``refused`` (policy ``fail``)."""
        if self._settings.audit_on_store_error != "spool" and not keep:
            raise AuditUnavailableError(f"{refused} ([integrity] audit_on_store_error = fail): {exc}") from exc
        for event in events:
            spool.put(event, occurred_at=attempted_at, reason=f"{type(exc).__name__}: {exc}")

    def drain_spool(self) -> DrainReport:
        """Replay every spooled audit event into the store, in order, and chain them.

        Returns:
            What was replayed, found already recorded, set aside (refused by the store, kept beside the
            spool) and left in the spool (the store became unreachable during the replay).
        """
        log = AuditLog(self.get_store())
        report = _spool(self._settings.spool_dir).drain(log.record)
        self._report_drain(report)
        if report.replayed:
            log.chain_pending()
        return report

    def _drain_before(self, spool: AuditSpool, log: AuditLog) -> bool:
        """Replay the spool before a new event; whether anything was replayed. A spool that cannot be replayed
        now is reported and left for later: it never keeps the new event from being recorded."""
        try:
            report = spool.drain(log.record)
        except Exception:
            self.log.exception("The audit spool %s could not be replayed now; it is kept", spool.path)
            return False
        self._report_drain(report)
        return report.moved > 0

    def _report_drain(self, report: DrainReport) -> None:
        if report.moved or report.remaining:
            self.log.info("Audit spool replayed: %s.", report.summary())
        for error in report.errors:
            self.log.error("Audit spool: %s", error)

    # -- data validation ---------------------------------------------------------------------------

    def validate_data(self, data: Any, suite: Any, **options: Any) -> ValidationRun:
        """Validate ``data`` against ``suite``, store the full result and record the audit event.

        Args:
            data: A DataFrame, list of records, dict of columns or JSON text (an upstream task's return value),
                a ``pathlib.Path`` / ``ObjectStoragePath``, or an ``SqlSource``.
            suite: Any suite reference (GX suite, list of expectations, suite dict, ``.json`` path, suite name).
            options: ``source=`` (a :class:`~airflow_integrity.hooks.data_sources.DataSource`), ``label=``,
                ``on_failure=``, ``business_key=``, ``collect_unexpected_rows=``, and the arguments of
                :func:`airflow_integrity.validation.validate` (``expectation_parameters``, ``context_dir``, ...).

        Returns:
            The run; ``run.summary`` is compact and JSON-serialisable and names the stored full result by
            ``result_id``. Nothing is raised for failed expectations: apply a policy with
            :func:`airflow_integrity.hooks.validation.enforce`.
        """
        from airflow_integrity.hooks.validation import validate_and_record

        return validate_and_record(self, data, suite, **options)

    def get_validation_result(self, result_id: str) -> StoredValidationResult | None:
        """The full result a validation summary names by ``result_id`` (``None`` if there is none)."""
        from airflow_integrity.store import validation_results

        return validation_results.get(self.get_store(), result_id)
