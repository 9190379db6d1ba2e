"""``ValidatedDataTrigger``: wait in the triggerer until a file, table or endpoint holds data that passes a suite.

Each look loads the data and, when there is some, validates it (a stored, audited validation attributed to
the waiting task); GX and database work run in a thread, never on the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_integrity.hooks.data_sources import DataSource

WAITING, PASSED, ERROR, TIMEOUT = "waiting", "success", "error", "timeout"


def check_once(
    source: DataSource,
    suite: Any,
    *,
    integrity_conn_id: str | None = None,
    task_identity: Mapping[str, Any] | None = None,
    business_key: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Load and validate the source once.

    Returns:
        ``{"status": "success", "summary": ...}`` when the data passed; ``{"status": "waiting", "reason": ...}``
        when there is no (readable) data yet, the source is unreachable, or the data failed (then with
        ``result_id``); ``{"status": "error", "message": ...}`` for a bad suite, which waiting cannot fix.
    """
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.hooks.validation import validate_and_record
    from airflow_integrity.validation.errors import DataError, SourceUnavailableError, SuiteError

    hook = IntegrityCheckHook(integrity_conn_id=integrity_conn_id)
    task_instance = SimpleNamespace(**task_identity) if task_identity else None
    try:
        run = validate_and_record(
            hook,
            None,
            suite,
            source=source,
            on_failure="wait",
            business_key=business_key,
            task_instance=task_instance,
            **options,
        )
    except SuiteError as exc:
        return {"status": ERROR, "message": f"{type(exc).__name__}: {exc}"}
    except (DataError, SourceUnavailableError) as exc:
        return {"status": WAITING, "reason": f"{source.label()}: {exc}"}
    if run.success:
        return {"status": PASSED, "summary": run.summary}
    return {"status": WAITING, "reason": run.describe(), "result_id": run.result_id}


class ValidatedDataTrigger(BaseTrigger):
    """Re-check a source every ``poke_interval`` seconds until its data passes the suite.

    Fires ``{"status": "success", "summary": ...}`` when it passes, ``{"status": "timeout", "last_failure":
    ...}`` when ``timeout_at`` comes first, ``{"status": "error", "message": ...}`` for a bad suite.

    Args:
        source: A serialised :class:`~airflow_integrity.hooks.data_sources.DataSource`.
        suite: A JSON-serialisable suite reference (path, suite name, suite dict or list of expectation dicts).
        poke_interval: Seconds between checks.
        timeout_at: Unix time after which to stop waiting (``None``: wait indefinitely).
        integrity_conn_id: The integrity store connection.
        task_identity: The waiting task's ``dag_id``, ``run_id``, ``task_id``, ``map_index``, ``try_number``,
            so the audit events of each check are attributed to it.
        business_key: Business key of the audit events.
        options: ``expectation_parameters``, ``context_dir``, ``allow_empty``, ``samples``.
    """

    def __init__(
        self,
        *,
        source: Mapping[str, Any],
        suite: Any,
        poke_interval: float = 60.0,
        timeout_at: float | None = None,
        integrity_conn_id: str | None = None,
        task_identity: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.source = dict(source)
        self.suite = suite
        self.poke_interval = poke_interval
        self.timeout_at = timeout_at
        self.integrity_conn_id = integrity_conn_id
        self.task_identity = dict(task_identity) if task_identity else None
        self.business_key = business_key
        self.options = dict(options or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "source": self.source,
                "suite": self.suite,
                "poke_interval": self.poke_interval,
                "timeout_at": self.timeout_at,
                "integrity_conn_id": self.integrity_conn_id,
                "task_identity": self.task_identity,
                "business_key": self.business_key,
                "options": self.options,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, sleep, check again; one event at the end."""
        source = DataSource.deserialize(self.source)
        last_failure = "no check finished yet"
        checks = 0
        while True:
            outcome = await asyncio.to_thread(
                check_once,
                source,
                self.suite,
                integrity_conn_id=self.integrity_conn_id,
                task_identity=self.task_identity,
                business_key=self.business_key,
                **self.options,
            )
            checks += 1
            if outcome["status"] in (PASSED, ERROR):
                yield TriggerEvent({**outcome, "checks": checks})
                return
            last_failure = outcome["reason"]
            self.log.info("Check %d: not yet valid: %s", checks, last_failure.splitlines()[0])
            if self.timeout_at is not None and time.time() + self.poke_interval >= self.timeout_at:
                yield TriggerEvent(
                    {
                        "status": TIMEOUT,
                        "checks": checks,
                        "last_failure": last_failure,
                        "result_id": outcome.get("result_id"),
                    }
                )
                return
            await asyncio.sleep(self.poke_interval)
