"""Root ASGI middleware: hold an answer to a human-in-the-loop task until its question has settled.

Airflow 3.3 resumes a parked human-in-the-loop task as soon as the answer arrives. The end of the process
that parked it can reach the scheduler up to ``[workers] min_heartbeat_interval`` (5 s) later; when the
resumed try is queued by then, the scheduler takes that late end for the resumed try's and fails it ("state
mismatch"), and the answer is lost with the try. ``docs/airflow-hitl-state-mismatch.md`` describes both causes,
the fixes Airflow needs and the measurements.

Until then, the API server holds ``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails`` until the
current try has been parked for ``[integrity] approval_settle_seconds`` (never longer than that, and never past
the question's response deadline), then lets Airflow handle it as usual. Only an answer its caller may give is
held: the caller's token and permission are checked first, as Airflow will check them. A person answering
takes longer than the hold and never notices it; a client answering at once gets its response a few seconds
later. An end reported later than the hold still meets the failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_integrity.plugin.middleware import request_token

log = logging.getLogger(__name__)

_ANSWER_PATH = re.compile(
    r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)"
    r"/(?P<map_index>[+-]?[0-9]{1,9})/hitlDetails/?\Z"
)
_PARKED = frozenset({"awaiting_input", "deferred"})
_ASKING = frozenset({"scheduled", "queued", "running"})  # about to park: the answer would resume it at once
# Keep a held answer this far from the question's response deadline.
_DEADLINE_MARGIN = 1.0


@dataclass(frozen=True)
class Question:
    """A question still waiting for its answer: since when the current try waits, and until when."""

    parked_at: datetime | None  # None: the try has not parked yet
    deadline: datetime | None


def open_question(dag_id: str, run_id: str, task_id: str, map_index: int) -> Question | None:
    """The task instance's unanswered question (``None``: it asks none, it is answered, or the try has ended).

    A retried or cleared try keeps the first try's question row (Airflow resets its answer, not its creation
    time), so the current try's wait is timed from when the task instance last changed state: its park.
    """
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(
                TaskInstance.state,
                TaskInstance.updated_at,
                TaskInstance.trigger_timeout,
                HITLDetail.created_at,
                HITLDetail.responded_at,
            )
            .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).first()
    if row is None or row.responded_at is not None:
        return None  # Airflow answers these itself (404, 409): nothing to wait for
    state = str(getattr(row.state, "value", row.state))
    deadline = _utc(row.trigger_timeout)
    if state in _ASKING:
        return Question(parked_at=None, deadline=deadline)
    if state not in _PARKED:
        return None
    parked = max(filter(None, (_utc(row.updated_at), _utc(row.created_at))))
    return Question(parked_at=parked, deadline=deadline)


def hold_seconds(question: Question | None, settle: float, now: datetime) -> float:
    """How long to hold an answer to ``question``: until it has been parked ``settle`` seconds, never more than
    ``settle``, and never closer than a second to its response deadline."""
    if question is None or not 0 < settle < math.inf:
        return 0.0
    wait = settle
    if question.parked_at is not None:
        wait = min(settle, settle - (now - question.parked_at).total_seconds())
    if question.deadline is not None:
        wait = min(wait, (question.deadline - now).total_seconds() - _DEADLINE_MARGIN)
    return max(0.0, wait)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _may_answer(token: str, dag_id: str) -> bool:
    """Whether the token's user may answer the DAG's questions (what Airflow's route will check)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except Exception:
        return False  # Airflow refuses it with 401
    return bool(
        manager.is_authorized_dag(
            method="PUT", access_entity=DagAccessEntity.HITL_DETAIL, details=DagDetails(id=dag_id), user=user
        )
    )


class ApprovalSettleMiddleware:
    """Delays a human-in-the-loop answer that arrives within ``approval_settle_seconds`` of the try's park."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = None
        if scope.get("type") == "http" and scope.get("method") == "PATCH":
            match = _ANSWER_PATH.search(scope.get("path", ""))
        if match is not None:
            try:
                await self._settle(scope, match)
            except Exception:
                # Holding is a precaution: whatever went wrong, Airflow handles the answer now.
                log.warning("airflow-integrity: an answer was not held", exc_info=True)
        await self.app(scope, receive, send)

    async def _settle(self, scope: dict[str, Any], match: re.Match[str]) -> None:
        from airflow_integrity.settings import load_settings

        settle = load_settings().approval_settle_seconds
        token = request_token(scope)
        if not 0 < settle < math.inf or token is None or not await _may_answer(token, match["dag_id"]):
            return
        question = await asyncio.to_thread(
            open_question, match["dag_id"], match["run_id"], match["task_id"], int(match["map_index"])
        )
        wait = hold_seconds(question, settle, datetime.now(UTC))
        if wait > 0:
            log.info(
                "airflow-integrity: holding the answer to %r %.1f s, until its try has waited %.0f s",
                f"{match['dag_id']}.{match['task_id']} ({match['run_id']})",
                wait,
                settle,
            )
            await asyncio.sleep(wait)
