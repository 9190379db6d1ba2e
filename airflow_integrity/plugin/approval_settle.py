"""Root ASGI middleware: hold an answer to a human-in-the-loop task until its question has settled.

Airflow 3.3 resumes a parked human-in-the-loop task as soon as the answer arrives. The end of the process
that parked it can reach the scheduler up to ``[workers] min_heartbeat_interval`` (5 s) later; when the
resumed try is queued by then, the scheduler takes that late end for the resumed try's and fails it ("state
mismatch"), and the answer is lost with the try. ``docs/airflow-hitl-state-mismatch.md`` describes both causes,
the fixes Airflow needs and the measurements.

Until then, the API server holds ``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails`` until the
question is ``[integrity] approval_settle_seconds`` old (never longer than that), then lets Airflow handle it
as usual. A person answering takes longer than the hold and never notices it; a client answering at once
gets its response a few seconds later. An end reported later than the hold still meets the failure.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

from airflow_integrity.plugin.middleware import request_token

log = logging.getLogger(__name__)

_ANSWER_PATH = re.compile(
    r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)"
    r"/(?P<map_index>-?\d+)/hitlDetails/?$"
)


def question_asked_at(dag_id: str, run_id: str, task_id: str, map_index: int) -> datetime | None:
    """When the task instance's current try asked its question (``None``: it asks none or has ended)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(HITLDetail.created_at, HITLDetail.responded_at)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).first()
    if row is None or row.responded_at is not None:
        return None  # Airflow answers these itself (404, 409): nothing to wait for
    asked = row.created_at
    return asked if asked.tzinfo else asked.replace(tzinfo=UTC)


def hold_seconds(asked_at: datetime | None, settle: float, now: datetime) -> float:
    """How long to hold an answer to a question asked at ``asked_at``: never more than ``settle``."""
    if asked_at is None or settle <= 0:
        return 0.0
    return max(0.0, min(settle, settle - (now - asked_at).total_seconds()))


class ApprovalSettleMiddleware:
    """Delays a human-in-the-loop answer that arrives within ``approval_settle_seconds`` of the question."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = None
        if scope.get("type") == "http" and scope.get("method") == "PATCH":
            match = _ANSWER_PATH.search(scope.get("path", ""))
        # Unauthenticated calls are refused by Airflow at once; only an answer that may be accepted waits.
        if match is not None and request_token(scope) is not None:
            await self._settle(match)
        await self.app(scope, receive, send)

    async def _settle(self, match: re.Match[str]) -> None:
        from airflow_integrity.settings import load_settings

        settle = load_settings().approval_settle_seconds
        if settle <= 0:
            return
        try:
            asked = await asyncio.to_thread(
                question_asked_at,
                match["dag_id"],
                match["run_id"],
                match["task_id"],
                int(match["map_index"]),
            )
        except Exception:
            # Holding is a precaution: without the question's age, let Airflow handle the answer now.
            log.warning("airflow-integrity: could not read when %s asked", match["task_id"], exc_info=True)
            return
        wait = hold_seconds(asked, settle, datetime.now(UTC))
        if wait > 0:
            log.info(
                "airflow-integrity: holding the answer to %s.%s (%s) %.1f s, until its question is %.0f s old",
                match["dag_id"],
                match["task_id"],
                match["run_id"],
                wait,
                settle,
            )
            await asyncio.sleep(wait)
