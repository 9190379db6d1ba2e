"""Run every check against the deployment's store and record that a qualification took place."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from airflow_integrity.qualification.checks import CHECKS, Context
from airflow_integrity.qualification.report import Report, canonical
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent, format_timestamp
from airflow_integrity.store.audit.signing import CheckpointKey

COMPLETED_EVENT = "qualification.completed"


def qualify(
    *,
    conn_id: str | None = None,
    key_conn_ids: Sequence[str] = (),
    runtime_role: str | None = None,
) -> tuple[Report, CheckpointKey | None]:
    """Run every check; return the report and the key to sign it with (``None`` when no key could be loaded).

    The store is the one the deployment uses (``conn_id``, else ``[integrity] conn_id``); the checkpoint keys
    are ``key_conn_ids``, else ``[integrity] checkpoint_key_conn_id``. A ``qualification.completed`` event with
    the outcome and the report's digest closes the run in the trail.
    """
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.settings import load_settings

    settings = load_settings()
    hook = IntegrityCheckHook(integrity_conn_id=conn_id) if conn_id else IntegrityCheckHook()
    keys, key_problem = _keys(list(key_conn_ids) or [settings.checkpoint_key_conn_id])
    ctx = Context(
        store=hook.get_store(ensure_schema=False),
        settings=settings,
        keys=keys,
        key_problem=key_problem,
        qualification_id=uuid.uuid4().hex[:12],
        runtime_role=runtime_role,
    )
    report = Report(ctx.qualification_id, format_timestamp(datetime.now(UTC)), ctx.host)
    for check in CHECKS:
        report.checks.append(check(ctx))
    report.finished_at = format_timestamp(datetime.now(UTC))
    _record_completion(ctx, report)
    signer = next((key for key in keys if key.can_sign), None)
    return report, signer


def _keys(conn_ids: list[str]) -> tuple[list[CheckpointKey], str | None]:
    from airflow_integrity.hooks.audit_checkpoints import load_checkpoint_key

    named = [conn_id for conn_id in conn_ids if conn_id]
    if not named:
        return [], (
            "no checkpoint key configured ([integrity] checkpoint_key_conn_id or --key-conn-id): nothing signs "
            "the trail's head, so a consistent rewrite by someone with database access would not be caught"
        )
    try:
        return [load_checkpoint_key(conn_id) for conn_id in named], None
    except Exception as exc:
        return [], f"the checkpoint key could not be loaded: {exc}"


def _record_completion(ctx: Context, report: Report) -> None:
    digest = hashlib.sha256(canonical(report.body())).hexdigest()
    details = {
        "qualification_id": ctx.qualification_id,
        "passed": report.passed,
        "failed_checks": [check.name for check in report.checks if not check.passed],
        "report_sha256": digest,
    }
    # A store that cannot take it has already failed a check, and the report says so.
    with contextlib.suppress(Exception):
        AuditLog(ctx.store).append(
            AuditEvent(COMPLETED_EVENT, ctx.actor, business_key=ctx.business_key, details=details)
        )
