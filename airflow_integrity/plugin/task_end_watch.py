"""Root ASGI middleware: audit task ends that only the worker's supervisor saw (a killed task process).

A task process normally records its own end through the worker's listener before it exits. When it is
killed (``kill -9``, the out-of-memory killer, a crash), nothing runs in it: its supervisor reports the end
to the API server's Execution API (``PATCH /execution/task-instances/{id}/state``), where Airflow calls no
listener. This middleware watches those reports and, once Airflow accepted one, records the state change
unless the task's own event for that try is already in the trail. The event is durable before the
supervisor gets its answer.

Tries that will be retried are not reported here: the supervisor leaves them to the scheduler, which fails
them for the missing heartbeat and calls the listeners itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any

log = logging.getLogger(__name__)

_STATE_PATH = re.compile(r"^/execution/task-instances/([0-9a-fA-F-]{36})/state$")
# States a supervisor reports with TITerminalStatePayload (its ``finish`` call).
_FINISH_STATES = frozenset({"failed", "skipped", "removed", "upstream_failed"})
_FINISH_FIELDS = frozenset({"state", "end_date", "rendered_map_index"})
_MAX_BODY = 64 * 1024
REASON = "the task process ended without reporting it (killed, crashed or out of memory); its supervisor did"


def reported_end(path: str, body: bytes) -> tuple[uuid.UUID, str] | None:
    """``(task instance id, state)`` if the request is a supervisor's report of a task's end, else ``None``."""
    match = _STATE_PATH.match(path)
    if match is None or not body or len(body) > _MAX_BODY:
        return None
    try:
        payload = json.loads(body)
        ti_id = uuid.UUID(match.group(1))
    except ValueError:
        return None
    if not isinstance(payload, dict) or not set(payload) <= _FINISH_FIELDS:
        return None
    state = payload.get("state")
    return (ti_id, state) if state in _FINISH_STATES else None


def record_unreported_end(ti_id: uuid.UUID, state: str) -> bool:
    """Record ``task_instance.<state>`` for the task instance unless its try already has that event.

    Returns whether an event was recorded. Runs beside the API server's metadata database, in a thread of
    its own (its own scoped session).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from airflow_integrity.hooks.events import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.identity import task_instance_identity
    from airflow_integrity.listeners.dispatch import listening

    if not listening():
        return False
    event_type = f"task_instance.{state}"
    with create_session() as session:
        ti = session.get(TaskInstance, ti_id)
        if ti is None:
            return False
        identity = task_instance_identity(ti)
        event = build_event(
            event_type,
            task_instance=ti,
            details={
                "previous_state": "running",
                "state": state,
                "hostname": ti.hostname,
                "reported_by": "supervisor",
                "reason": REASON,
            },
        )
    hook = IntegrityCheckHook()
    if _already_recorded(hook, event_type, identity):
        return False
    hook.record_event(event)
    return True


def _already_recorded(hook: Any, event_type: str, identity: dict[str, Any]) -> bool:
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    store = hook.get_store()
    # The task's own event may be recorded and not chained yet: chain it, so that it is found below.
    AuditLog(store).chain_pending()
    fields = ("task_id", "map_index", "try_number")
    for _, record in iter_records(store, dag_id=identity["dag_id"], run_id=identity["run_id"]):
        if isinstance(record, str) or record.event_type != event_type:
            continue
        if all(getattr(record, name) == identity[name] for name in fields):
            return True
    return False


class TaskEndWatchMiddleware:
    """Audits task ends reported by a supervisor for a task process that could not report them itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http" or scope.get("method") != "PATCH" or not _STATE_PATH.match(path):
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        found = reported_end(path, body)
        if found is None:
            await self.app(scope, _replay(messages, receive), send)
            return

        async def send_after_audit(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start" and 200 <= int(message.get("status", 0)) < 300:
                try:
                    await asyncio.to_thread(record_unreported_end, *found)
                except Exception:
                    log.exception("Audit of the reported end of task instance %s not recorded", found[0])
            await send(message)

        await self.app(scope, _replay(messages, receive), send_after_audit)


async def _read_body(receive: Any) -> tuple[list[dict[str, Any]], bytes]:
    messages: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message.get("type") != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return messages, b"".join(chunks)


def _replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    pending = list(messages)

    async def replayed() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
