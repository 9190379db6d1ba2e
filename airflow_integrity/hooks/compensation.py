"""Undoing a failed process's effects: each one exactly once, newest first, audited.

The effects a DAG run made are the idempotency keys its tasks completed (the ledger knows them). Undoing one
runs as guarded work of its own, under the key ``<key>/compensation`` in the effect's namespace: a retried,
cleared or concurrently started compensation replays instead of undoing twice, a killed one is taken over with
a higher fencing token, and once undone the original key no longer replays its result (see
``IdempotencyGuard``). The trail gets ``compensation.started`` when an attempt begins to undo an effect,
``compensation.completed`` or ``compensation.failed`` after it, each naming the effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_integrity.hooks.events import build_event, redact_text
from airflow_integrity.hooks.idempotency import GuardedResult, IdempotencyClaim, IdempotencyGuard, fingerprint_of
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store.ledger.codec import compensation_key
from airflow_integrity.store.ledger.defaults import DEFAULT_LEASE_SECONDS
from airflow_integrity.store.ledger.entries import LedgerEntry
from airflow_integrity.store.ledger.listing import completed_by_run

__all__ = [
    "EVENT_PREFIX",
    "Effect",
    "Undo",
    "compensate",
    "effects_of_run",
    "record_about",
    "rejections_in_run",
    "runs_relying_on",
]

log = logging.getLogger(__name__)

EVENT_PREFIX = "compensation."

# Undoes one effect: called with the effect's stored result and the compensation's claim.
Undo = Callable[[Any, IdempotencyClaim], Any]


@dataclass(frozen=True)
class Effect:
    """A completed idempotency key of a DAG run: what a compensation undoes.

    Args:
        entry: The key's ledger entry (state ``completed``).
    """

    entry: LedgerEntry

    @property
    def task_id(self) -> str | None:
        """The task that completed the key."""
        return self.entry.holder.get("task_id")

    @property
    def map_index(self) -> int:
        """The map index of the task instance that completed the key (-1 when not mapped)."""
        return int(self.entry.holder.get("map_index", -1))

    def as_dict(self) -> dict[str, Any]:
        """The effect as the compensation's audit events name it."""
        entry = self.entry
        return {
            "namespace": entry.namespace,
            "key": entry.key,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": entry.holder.get("try_number"),
            "fencing_token": entry.fencing_token,
            "fingerprint": entry.fingerprint,
            "result_sha256": entry.result_sha256,
            "completed_at": entry.completed_at.isoformat() if entry.completed_at else None,
        }


def effects_of_run(dag_id: str, run_id: str, *, integrity_conn_id: str | None = None) -> list[Effect]:
    """The effects a DAG run made, newest first: the order in which they are undone."""
    store = IntegrityCheckHook(integrity_conn_id=integrity_conn_id).get_store()
    return [Effect(entry) for entry in reversed(completed_by_run(store, dag_id, run_id))]


def rejections_in_run(dag_id: str, run_id: str, *, integrity_conn_id: str | None = None) -> list[str]:
    """The approvals of a DAG run whose last answer is a rejection, as the trail says: the newest
    ``approval.signed`` of each approval task with the meaning ``rejection`` (a cleared and re-answered approval
    counts by its new answer), or an ``approval.timed_out`` whose defaults reject: ``"<task> by <name>"`` each."""
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.query import of_runs

    store = IntegrityCheckHook(integrity_conn_id=integrity_conn_id).get_store()
    AuditLog(store).chain_pending()  # a signature recorded in the last second too
    rows = of_runs(store, {(dag_id, run_id)}, "approval.signed") + of_runs(
        store, {(dag_id, run_id)}, "approval.timed_out"
    )
    last: dict[str | None, str | None] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        record = row.record
        if record is None:
            continue
        details = record.details or {}
        signature = details.get("signature")
        if record.event_type == "approval.timed_out":
            taken = details.get("chosen_options") or details.get("defaults") or ()
            rejected = details.get("approved") is False or any("reject" in str(o).lower() for o in taken)
            last[record.task_id] = f"{record.task_id} by its timeout's default" if rejected else None
        elif isinstance(signature, dict):
            rejected = signature.get("meaning") == "rejection"
            last[record.task_id] = f"{record.task_id} by {signature.get('printed_name')}" if rejected else None
    return [who for who in last.values() if who is not None]


def runs_relying_on(effect: Effect, *, integrity_conn_id: str | None = None) -> list[str]:
    """Other DAG runs that replayed the effect's stored result (they rely on it): ``"<dag> / <run>"`` each."""
    entry = effect.entry
    mine = (entry.holder.get("dag_id"), entry.holder.get("run_id"))
    with IntegrityCheckHook(integrity_conn_id=integrity_conn_id).get_ledger(entry.namespace) as ledger:
        history = ledger.history(entry.key, namespace=entry.namespace)
    others = {
        (h.holder.get("dag_id"), h.holder.get("run_id"))
        for h in history
        if h.event == "replayed" and h.holder and (h.holder.get("dag_id"), h.holder.get("run_id")) != mine
    }
    return [f"{dag} / {run}" for dag, run in sorted(others, key=str)]


def record_about(
    hook: IntegrityCheckHook,
    effect: Effect,
    event: str,
    details: Mapping[str, Any],
    *,
    task_instance: Any = None,
    business_key: str | None = None,
) -> None:
    """Record ``compensation.<event>`` naming the effect, under its business key (default: its key)."""
    hook.record_event(
        build_event(
            EVENT_PREFIX + event,
            task_instance=task_instance,
            business_key=business_key or effect.entry.key,
            details={"effect": effect.as_dict(), **details},
        )
    )


def compensate(
    effect: Effect,
    undo: Undo,
    *,
    holder: Mapping[str, Any],
    business_key: str | None = None,
    integrity_conn_id: str | None = None,
    task_instance: Any = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    final_attempt: bool = False,
) -> GuardedResult:
    """Undo ``effect`` exactly once: run ``undo`` under the compensation key, or replay its stored result.

    Args:
        effect: The effect to undo.
        undo: Called with the effect's stored result and the compensation's claim; returns a JSON-serialisable
            result (stored, and replayed to every later compensation of the same effect).
        holder: Who compensates (DAG, run, task, try).
        business_key: Business key of the audit events (default: the effect's key).
        integrity_conn_id: Connection of the integrity store.
        task_instance: The compensating task instance, attached to the audit events.
        lease_seconds: How long the compensation's claim stays live without a heartbeat.
        final_attempt: Whether a failure now is for good (no retry left): said in ``compensation.failed``.
    """
    entry = effect.entry
    hook = IntegrityCheckHook(integrity_conn_id=integrity_conn_id)

    def audit(event: str, details: Mapping[str, Any]) -> None:
        record_about(hook, effect, event, details, task_instance=task_instance, business_key=business_key)

    with hook.get_ledger(entry.namespace) as ledger:
        result = ledger.load_result(entry)
    key = compensation_key(entry.key)
    guard = IdempotencyGuard(
        key=key,
        # What is undone: this very completion of the effect.
        fingerprint=fingerprint_of(
            {"compensates": entry.key, "fingerprint": entry.fingerprint, "fencing_token": entry.fencing_token},
            key=key,
            what=f"effect {entry.key!r}",
        ),
        namespace=entry.namespace,
        lease_seconds=lease_seconds,
        holder=holder,
        business_key=business_key or entry.key,
        integrity_conn_id=integrity_conn_id,
        task_instance=task_instance,
    )

    def work(claim: IdempotencyClaim) -> Any:
        audit("started", {"compensation_key": key, "fencing_token": claim.fencing_token})
        try:
            return undo(result, claim)
        except BaseException as exc:
            failure = {
                "compensation_key": key,
                "fencing_token": claim.fencing_token,
                "error": redact_text(f"{type(exc).__name__}: {exc}"),
                "final": final_attempt,
            }
            try:
                audit("failed", failure)
            except Exception:
                log.exception("Audit event compensation.failed of %r not recorded", entry.key)
            raise

    outcome = guard.run(work, wait=True)
    if not outcome.replayed:
        audit("completed", {"compensation_key": key, "fencing_token": outcome.fencing_token})
    return outcome
