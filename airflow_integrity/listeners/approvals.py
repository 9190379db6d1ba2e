"""Human-in-the-loop responses become signed-record audit events (21 CFR Part 11 §11.50).

When a task of Airflow's standard provider (``ApprovalOperator``, ``HITLOperator`` and its subclasses) ends
after a person responded, the worker that ran it records ``approval.signed``: the person as the actor, and
the signature's printed name, user id, date and time, and meaning, with what was signed (subject, options,
the chosen ones). The response itself comes from Airflow's record of it (``hitl_summary``, filled in by
the operator from the response the API server stored), so the event states what the task acted upon.
"""

from __future__ import annotations

from typing import Any

from airflow_integrity.audit import fingerprint
from airflow_integrity.signatures import is_human_in_the_loop, signature_meaning

APPROVAL_EVENT = "approval.signed"
TIMEOUT_EVENT = "approval.timed_out"


def _is_hitl(task: Any) -> bool:
    return is_human_in_the_loop(task) and hasattr(task, "hitl_summary")


def _summary(task: Any) -> dict[str, Any] | None:
    try:
        summary = task.hitl_summary
    except Exception:
        return None
    return summary if isinstance(summary, dict) else None


def approval_event(task: Any) -> tuple[str, str | None, dict[str, Any]] | None:
    """The ``(event type, signer, details)`` of a human-in-the-loop task's response, or ``None``.

    ``None`` when ``task`` is not a human-in-the-loop task or no response reached it yet.
    """
    if task is None or not _is_hitl(task):
        return None
    summary = _summary(task)
    if summary is None:
        return None
    what = {
        "operator": type(task).__name__,
        "subject": summary.get("subject"),
        "options": summary.get("options"),
        "assigned_users": summary.get("assigned_users"),
    }
    responder = summary.get("responded_by_user")
    chosen = list(summary.get("chosen_options") or [])
    if not responder:
        if summary.get("error_type") == "timeout":
            return TIMEOUT_EVENT, None, {**what, "defaults": summary.get("defaults")}
        if chosen:  # nobody answered in time and the task's defaults were taken: no signature, but a decision
            details = {**what, "defaults": summary.get("defaults"), "chosen_options": chosen}
            if "approved" in summary:
                details["approved"] = bool(summary["approved"])
            return TIMEOUT_EVENT, None, details
        return None
    name = str(responder.get("name") or responder.get("id"))
    params_input = summary.get("params_input") or {}
    details = {
        **what,
        "chosen_options": chosen,
        "params_input_sha256": fingerprint(params_input) if params_input else None,
        "signature": {
            "printed_name": name,
            "user_id": str(responder.get("id")) if responder.get("id") is not None else None,
            "signed_at": summary.get("responded_at"),
            "meaning": signature_meaning(task, chosen),
        },
    }
    if "approved" in summary:
        details["approved"] = bool(summary["approved"])
    return APPROVAL_EVENT, name, details
