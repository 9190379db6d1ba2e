"""``airflow integrity ledger ...`` commands: show a key with its full history, release a key.

Both are audited: ``idempotency.inspected`` and ``idempotency.released`` events name the person (``--user``,
else the operating-system login) and the reason, under the key as business key.

Only argument definitions are evaluated when the CLI parser is built; each command's code imports the
hook and the ledger when it runs.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from airflow.cli.cli_config import ActionCommand, Arg, lazy_load_command

from airflow_integrity.cli.args import ARG_CONN_ID

if TYPE_CHECKING:
    from airflow_integrity.store.ledger.entries import HistoryEntry, LedgerEntry, Release
    from airflow_integrity.store.ledger.ledger import IdempotencyLedger

_ARG_KEY = Arg(("key",), help="The idempotency key, for example claim-42", metavar="KEY")
_ARG_NAMESPACE = Arg(("--namespace",), help="The key's namespace (default: default)", default="default")
_ARG_JSON = Arg(("--json",), help="Print the entry and its history as JSON", action="store_true")
_ARG_RESULT = Arg(("--result",), help="Also print the stored result", action="store_true")
_ARG_REASON = Arg(("--reason",), help="Why the key is released (recorded)", required=True)
_ARG_USER = Arg(("--user",), help="Who releases the key (recorded; default: the OS login)", default=None)
_ARG_SHOW_REASON = Arg(("--reason",), help="Why the key is looked at (recorded in the audit trail)", default=None)
_ARG_SHOW_USER = Arg(("--user",), help="Who looks at the key (recorded; default: the OS login)", default=None)

LEDGER_COMMANDS = (
    ActionCommand(
        name="show",
        help="Show an idempotency key: its state, holder, fencing token, result digest and full history",
        func=lazy_load_command("airflow_integrity.cli.ledger_command.show"),
        args=(_ARG_KEY, _ARG_NAMESPACE, _ARG_JSON, _ARG_RESULT, _ARG_SHOW_REASON, _ARG_SHOW_USER, ARG_CONN_ID),
    ),
    ActionCommand(
        name="release",
        help="Re-open a completed or failed idempotency key so that its work runs again (person, reason recorded)",
        func=lazy_load_command("airflow_integrity.cli.ledger_command.release"),
        args=(_ARG_KEY, _ARG_REASON, _ARG_USER, _ARG_NAMESPACE, ARG_CONN_ID),
    ),
)


def _ledger(args: argparse.Namespace) -> IdempotencyLedger:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store.ledger.ledger import IdempotencyLedger

    # The CLI runs beside the metadata database: let connection look-ups reach it, as Airflow's own
    # `airflow connections` commands do.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    store = IntegrityCheckHook(integrity_conn_id=getattr(args, "conn_id", None)).get_store()
    return IdempotencyLedger(store, namespace=getattr(args, "namespace", None) or "default")


def _audit(args: argparse.Namespace, event: str, details: dict[str, Any], dag_id: str | None = None) -> None:
    """Record ``idempotency.<event>`` with the person as actor (policy ``audit_on_store_error`` applies), under
    the key's DAG when given (whoever may read the key reads what was done to it)."""
    from dataclasses import replace

    from airflow_integrity.hooks.events import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    who = person(args)
    hook = IntegrityCheckHook(integrity_conn_id=getattr(args, "conn_id", None))
    event_ = build_event(
        f"idempotency.{event}",
        business_key=args.key,
        details={**details, "person": who, "via": "airflow integrity ledger"},
        user=who,
    )
    hook.record_event(event_ if dag_id is None else replace(event_, dag_id=dag_id))


def _fail(exc: Exception) -> SystemExit:
    print(f"error: {exc}", file=sys.stderr)
    return SystemExit(1)


def person(args: argparse.Namespace) -> str:
    """The person acting: ``--user``, else the operating-system login."""
    return getattr(args, "user", None) or getpass.getuser()


def _holder(holder: dict[str, Any] | None) -> str:
    from airflow_integrity.store.ledger.entries import describe_holder

    return describe_holder(holder) if holder else "-"


def _time(value: Any) -> str:
    return value.isoformat() if value is not None else "-"


def _entry_lines(entry: LedgerEntry) -> list[str]:
    if entry.result_sha256:
        where = "by reference" if entry.result_by_reference else "inline"
        result = f"{entry.result_size:,} bytes JSON, sha256 {entry.result_sha256} ({where})"
    else:
        result = "-"
    state = entry.state.value
    if entry.state.value == "failed":
        state += " (retryable)" if entry.retryable else " (permanent until released)"
    rows = [
        ("state", state),
        ("fingerprint", entry.fingerprint),
        ("fencing token", f"{entry.fencing_token}    attempts: {entry.attempts}"),
        ("holder", _holder(entry.holder)),
        ("inputs first from", _holder(entry.origin)),
        ("lease until", f"{_time(entry.lease_expires_at)} ({entry.lease_seconds:g} s leases)"),
        ("result", result),
        ("error", entry.error or "-"),
        ("created", _time(entry.created_at)),
        ("updated", _time(entry.updated_at)),
        ("completed", _time(entry.completed_at)),
        ("expires", _time(entry.expires_at) if entry.expires_at else "never"),
    ]
    if entry.last_person:
        rows.append(("last released by", f"{entry.last_person}: {entry.last_reason}"))
    return [f"  {name + ':':<19}{value}" for name, value in rows]


def _history_line(item: HistoryEntry) -> str:
    parts = [f"  #{item.seq:<5} {_time(item.at)}  {item.event:<22}"]
    if item.fencing_token is not None:
        parts.append(f"token {item.fencing_token}")
    if item.previous_state and item.state:
        parts.append(f"{item.previous_state} -> {item.state}")
    elif item.state:
        parts.append(f"state {item.state}")
    if item.person:
        parts.append(f"by {item.person}: {item.reason}")
    elif item.holder:
        parts.append(f"holder {_holder(item.holder)}")
    if item.event == "takeover" and item.previous_holder:
        parts.append(f"from {_holder(item.previous_holder)}")
    if item.event == "fingerprint_mismatch" and item.fingerprint:
        parts.append(f"offered fingerprint {item.fingerprint}")
    if item.error and item.event == "failed":
        parts.append(f"error: {item.error}")
    if item.result_sha256 and item.event == "completed":
        parts.append(f"result sha256 {item.result_sha256}")
    if item.details:
        parts.append(json.dumps(item.details, sort_keys=True))
    return "  ".join(parts)


def show(args: argparse.Namespace) -> None:
    """Print a key's entry and its full history; exit 1 if the key is unknown or the store unreachable."""
    from airflow_integrity.store import StoreError
    from airflow_integrity.store.ledger.entries import KeyNotFoundError

    try:
        with _ledger(args) as ledger:
            entry = ledger.get(args.key)
            if entry is None:
                raise KeyNotFoundError(
                    f"No idempotency key {args.key!r} in namespace {ledger.namespace!r}. Check the key and "
                    "--namespace (the operator's namespace, 'default' unless it sets one)."
                )
            history = ledger.history(args.key)
            result = ledger.load_result(entry) if args.result and entry.result_sha256 else None
        _audit(
            args,
            "inspected",
            {
                "namespace": entry.namespace,
                "key": entry.key,
                "state": entry.state.value,
                "with_result": bool(getattr(args, "result", False)),
                "reason": getattr(args, "reason", None),
            },
        )
    except StoreError as exc:
        raise _fail(exc) from None
    if args.json:
        document: dict[str, Any] = {"entry": entry.as_dict(), "history": [item.as_dict() for item in history]}
        if args.result:
            document["result"] = result
        print(json.dumps(document, indent=2, ensure_ascii=False, default=str))
        return
    print(f"Idempotency key {entry.key!r} (namespace {entry.namespace!r})")
    print("\n".join(_entry_lines(entry)))
    if args.result:
        print("  result value:")
        print("    " + json.dumps(result, indent=2, ensure_ascii=False).replace("\n", "\n    "))
    print(f"History ({len(history)} events):")
    print("\n".join(_history_line(item) for item in history))


def release_key(args: argparse.Namespace) -> Release:
    """Release the key named by ``args`` and return the recorded release (errors propagate)."""
    with _ledger(args) as ledger:
        return ledger.release(args.key, reason=args.reason, person=person(args))


def release(args: argparse.Namespace) -> None:
    """Re-open a key for its next claim, recording the person and the reason; exit 1 when refused."""
    from airflow_integrity.store import StoreError

    try:
        done = release_key(args)
    except StoreError as exc:
        raise _fail(exc) from None
    try:
        _audit(args, done.event, done.audit_details(), dag_id=done.dag_id)
    except StoreError as exc:
        print(
            f"error: idempotency key {done.key!r} was released (the ledger's history records it), but the audit "
            f"event could not be recorded: {exc}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    print(
        f"Released idempotency key {done.key!r} (namespace {done.namespace!r}): it was {done.previous_state} "
        f"with fencing token {done.fencing_token}; the next claim runs the work again. Recorded: "
        f"{done.person} at {done.released_at.isoformat()}, reason: {done.reason}"
    )
