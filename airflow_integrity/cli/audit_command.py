"""``airflow integrity audit ...`` commands: verify the trail, export it for reviewers, sign a checkpoint.

The checkpoint key comes from an Airflow connection named with ``--key-conn-id``: its password holds
either the HMAC-SHA256 secret (any text of at least 16 bytes) or an Ed25519 key in PEM form (a private
key signs and verifies; a public key only verifies). An optional ``key_id`` in the connection's extra
names the key; otherwise an id derived from the key is used. Give ``--key-conn-id`` once per key that
signed checkpoints (after a key rotation, the old and the new one).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from airflow.cli.cli_config import ActionCommand, Arg, lazy_load_command

from airflow_integrity.cli.args import ARG_CONN_ID

if TYPE_CHECKING:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store import IntegrityStore
    from airflow_integrity.store.audit.signing import CheckpointKey

ARG_KEY_CONN_ID = Arg(
    ("--key-conn-id",),
    help="Connection whose password holds the checkpoint key: an HMAC secret or an Ed25519 PEM key "
    "(repeat for several keys)",
    action="append",
    default=None,
)
ARG_FROM_CHECKPOINT = Arg(
    ("--from-checkpoint",),
    help="Verify only the events after the latest checkpoint the key verifies",
    action="store_true",
)
ARG_FORMAT = Arg(("--format",), help="Export format", choices=("jsonl", "csv"), default="jsonl")
ARG_BUSINESS_KEY = Arg(("--business-key",), help="Only events for this business key, across all runs")
ARG_DAG_ID = Arg(("--dag-id",), help="Only events of this DAG")
ARG_RUN_ID = Arg(("--run-id",), help="Only events of this DAG run")
ARG_SINCE = Arg(("--since",), help="Only events recorded at or after this ISO-8601 time (UTC if no zone)")
ARG_UNTIL = Arg(("--until",), help="Only events recorded before this ISO-8601 time (UTC if no zone)")
ARG_KEYED_ONLY = Arg(
    ("--keyed-only",),
    help="With --business-key: only the events recorded with the key, not the other events of its runs",
    action="store_true",
)
ARG_OUTPUT = Arg(("--output", "-o"), help="Write to this file instead of standard output")
ARG_RECONCILE_SINCE = Arg(
    ("--since",), help="Only DAG runs started (or queued) at or after this ISO-8601 time (UTC if no zone)"
)
ARG_RECORD_GAPS = Arg(
    ("--record-gaps",),
    help="Record a reconciliation.gap event per gap found (once: a gap already marked is not marked again)",
    action="store_true",
)
ARG_ARCHIVE_TO = Arg(
    ("--output", "-o"),
    help="The archive file to write (never overwritten)",
    required=True,
)
ARG_ARCHIVE = Arg(
    ("archive",), metavar="FILE", help="The archive file written by `airflow integrity audit archive`"
)
ARG_GRACE = Arg(
    ("--grace",),
    help="Seconds a worker has to record a task's outcome before its absence counts (default 30)",
    type=float,
    default=30.0,
)

AUDIT_COMMANDS = (
    ActionCommand(
        name="verify",
        help="Verify the audit trail: exit 0 with the event count and head hash, or 1 naming the first bad event",
        func=lazy_load_command("airflow_integrity.cli.audit_command.verify"),
        args=(ARG_CONN_ID, ARG_KEY_CONN_ID, ARG_FROM_CHECKPOINT),
    ),
    ActionCommand(
        name="export",
        help="Export the audit trail as JSON Lines or CSV, stating whether the chain verified",
        func=lazy_load_command("airflow_integrity.cli.audit_command.export"),
        args=(
            ARG_CONN_ID,
            ARG_FORMAT,
            ARG_BUSINESS_KEY,
            ARG_DAG_ID,
            ARG_RUN_ID,
            ARG_SINCE,
            ARG_UNTIL,
            ARG_KEYED_ONLY,
            ARG_OUTPUT,
            ARG_KEY_CONN_ID,
        ),
    ),
    ActionCommand(
        name="archive",
        help="Write every event up to the newest checkpoint the key verifies, and that checkpoint, to a file "
        "that `verify-archive` checks without the store (the trail itself is never deleted)",
        func=lazy_load_command("airflow_integrity.cli.audit_command.archive"),
        args=(ARG_CONN_ID, ARG_KEY_CONN_ID, ARG_ARCHIVE_TO),
    ),
    ActionCommand(
        name="verify-archive",
        help="Check an archive on its own: every event's hash and link from the first, its end at the "
        "checkpoint, and the checkpoint's signature with the key (exit 0, or 1 naming the first bad line)",
        func=lazy_load_command("airflow_integrity.cli.audit_command.verify_archive"),
        args=(ARG_ARCHIVE, ARG_KEY_CONN_ID),
    ),
    ActionCommand(
        name="checkpoint",
        help="Verify the trail since the last checkpoint and sign its head now",
        func=lazy_load_command("airflow_integrity.cli.audit_command.checkpoint"),
        args=(ARG_CONN_ID, ARG_KEY_CONN_ID),
    ),
    ActionCommand(
        name="reconcile",
        help="Compare Airflow's metadata database with the trail: list every task-instance and DAG-run state "
        "without its event (exit 1 when any); record nothing unless --record-gaps",
        func=lazy_load_command("airflow_integrity.cli.audit_command.reconcile"),
        args=(ARG_CONN_ID, ARG_DAG_ID, ARG_RECONCILE_SINCE, ARG_RECORD_GAPS, ARG_GRACE),
    ),
    ActionCommand(
        name="drain",
        help="Replay the events this host spooled while the store was unreachable; report what was replayed, "
        "found already recorded, set aside (refused by the store) and left",
        func=lazy_load_command("airflow_integrity.cli.audit_command.drain"),
        args=(ARG_CONN_ID,),
    ),
)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _hook(args: argparse.Namespace) -> IntegrityCheckHook:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    # The CLI runs beside the metadata database: let connection look-ups reach it, as Airflow's own
    # `airflow connections` commands do.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    return IntegrityCheckHook(integrity_conn_id=getattr(args, "conn_id", None))


def _store(args: argparse.Namespace) -> IntegrityStore:
    return _hook(args).get_store()


def _store_as_it_is(args: argparse.Namespace) -> IntegrityStore:
    """The store, changed in nothing: its schema is checked, never migrated (verification must not write)."""
    from airflow_integrity.store import SchemaNotCurrentError, StoreUnavailableError

    store = _hook(args).get_store(ensure_schema=False)
    database = store.location.url.database or ""
    if store.backend == "sqlite" and database != ":memory:" and not os.path.isfile(database):
        raise StoreUnavailableError(
            f"There is no integrity store at {database} ({store.location.source}); verification creates nothing. "
            "Check [integrity] sqlite_path or the connection."
        )
    if store.is_current():
        return store
    status = store.describe()
    if not status.current:
        raise SchemaNotCurrentError(
            f"The integrity store {status.location} is at schema revision {status.revision or 'none'}, this "
            f"airflow-integrity reads {status.head}; verification changes nothing, so it does not migrate. Run "
            "`airflow integrity db migrate` first (as the store's owner)."
        )
    return store


def load_key(conn_id: str) -> CheckpointKey:
    """The checkpoint key held by the Airflow connection ``conn_id`` (see the module docstring)."""
    from airflow_integrity.hooks.audit_checkpoints import load_checkpoint_key

    return load_checkpoint_key(conn_id)


def _keys(args: argparse.Namespace) -> list[CheckpointKey]:
    return [load_key(conn_id) for conn_id in getattr(args, "key_conn_id", None) or []]


def verify(args: argparse.Namespace) -> None:
    """Print the event count and head hash and exit 0, or the first bad sequence number and reason and exit 1."""
    from airflow_integrity.store import StoreError
    from airflow_integrity.store.audit.verify import verify as verify_chain

    try:
        result = verify_chain(
            _store_as_it_is(args), key=_keys(args), from_checkpoint=getattr(args, "from_checkpoint", False)
        )
    except StoreError as exc:
        _fail(str(exc))
        return
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        print(f"OK: {result.summary()}")
        return
    print(f"FAILED: first bad sequence number {result.first_bad_seq}: {result.reason}: {result.detail}")
    print(f"{result.count} events verified before it.")
    raise SystemExit(1)


def export(args: argparse.Namespace) -> None:
    """Write the export; exit 1 (after writing it) if the chain does not verify."""
    from airflow_integrity.store import StoreError
    from airflow_integrity.store.audit.export import export as export_trail

    output = getattr(args, "output", None)
    try:
        keys = _keys(args)
        store = _store(args)
        target: Any = nullcontext(sys.stdout)
        if output:
            target = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        with target as out:
            summary = export_trail(
                store,
                args.format,
                out=out,
                business_key=args.business_key,
                dag_id=args.dag_id,
                run_id=args.run_id,
                since=args.since,
                until=args.until,
                key=keys,
                with_runs=not getattr(args, "keyed_only", False),
            )
    except (StoreError, OSError) as exc:
        _fail(str(exc))
        return
    result = summary.verification
    status = "chain verified" if result.ok else f"chain NOT verified: {result.summary()}"
    print(f"Exported {summary.events} events{f' to {output}' if output else ''}; {status}.", file=sys.stderr)
    if not result.ok:
        raise SystemExit(1)


def checkpoint(args: argparse.Namespace) -> None:
    """Sign the current head of the trail with the key and store the checkpoint."""
    from airflow_integrity.store import StoreError
    from airflow_integrity.store.audit.checkpoints import create_checkpoint

    try:
        keys = _keys(args)
        if not keys:
            _fail("give the signing key with --key-conn-id (a connection whose password holds the key).")
        signer = next((k for k in keys if k.can_sign), keys[0])
        made = create_checkpoint(_store(args), signer)
    except StoreError as exc:
        _fail(str(exc))
        return
    print(
        f"Checkpoint {made.id}: seq {made.seq}, head hash {made.head_hash}, signed {made.created_at} "
        f"with {made.algorithm} key {made.key_id}."
    )


def archive(args: argparse.Namespace) -> None:
    """Write the archive to a new file (through a temporary one, so no partial archive is ever left)."""
    import os

    from airflow_integrity.store import StoreError
    from airflow_integrity.store.audit.archive import write_archive

    target = args.output
    if os.path.exists(target):
        _fail(f"{target} exists; an archive is never overwritten. Choose a new file name.")
    partial = f"{target}.partial"
    created = False
    try:
        keys = _keys(args)
        if not keys:
            _fail("give the checkpoint key with --key-conn-id: the archive ends at a checkpoint it verifies.")
        with open(partial, "x", encoding="utf-8", newline="\n") as out:
            created = True
            count = write_archive(_store(args), out, keys)
            out.flush()
            os.fsync(out.fileno())
        os.link(partial, target)  # fails rather than replace a file made meanwhile
    except FileExistsError as exc:
        _fail(f"{exc.filename} exists: another archive is being written there, or one was left; not touched.")
        return
    except (StoreError, OSError) as exc:
        _fail(str(exc))
        return
    finally:
        if created and os.path.exists(partial):
            os.unlink(partial)
    print(f"Archived {count} events to {target}, up to the signed checkpoint at seq {count}.")


def verify_archive(args: argparse.Namespace) -> None:
    """Check an archive without the store; exit 1 naming the first bad line."""
    from airflow_integrity.store import StoreError
    from airflow_integrity.store.audit.archive import check_archive

    try:
        keys = _keys(args)
        if not keys:
            _fail("give the checkpoint key with --key-conn-id: the archive's checkpoint is checked with it.")
        with open(args.archive, encoding="utf-8") as lines:
            result = check_archive(lines, keys)
    except (StoreError, OSError) as exc:
        _fail(str(exc))
        return
    print(result.summary())
    if not result.ok:
        raise SystemExit(1)


def drain(args: argparse.Namespace) -> None:
    """Replay the spool; exit 1 if a line was set aside or the store could not take everything."""
    from airflow_integrity.store import StoreError

    hook = _hook(args)
    try:
        report = hook.drain_spool()
    except StoreError as exc:
        _fail(str(exc))
        return
    print(f"Audit spool: {report.summary()}.")
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    if report.set_aside:
        print(
            f"Lines set aside are kept, with the reason, in {report.set_aside_path}: review them, then record "
            "what they describe by other means.",
            file=sys.stderr,
        )
    if report.set_aside or report.remaining:
        raise SystemExit(1)


def reconcile(args: argparse.Namespace) -> None:
    """List the states without their event; exit 1 when there is any (after recording markers, if asked)."""
    import datetime as dt

    from airflow_integrity.completeness.gaps import find_gaps, gap_events
    from airflow_integrity.completeness.metadata import read_runs
    from airflow_integrity.store import StoreError
    from airflow_integrity.store.audit.event import to_timestamp

    hook = _hook(args)
    try:
        since = to_timestamp(getattr(args, "since", None), "--since")
        store = hook.get_store()
        keys = _run_keys(getattr(args, "dag_id", None), since)
        gaps = []
        for start in range(0, len(keys), 200):
            runs = _read(read_runs, keys[start : start + 200])
            gaps.extend(find_gaps(store, runs, grace=dt.timedelta(seconds=getattr(args, "grace", 30.0))))
        for gap in gaps:
            print(gap.describe())
        print(f"{len(keys)} DAG run(s) compared with the trail: {len(gaps)} state(s) without their event.")
        unmarked = [gap for gap in gaps if not gap.marked]
        if getattr(args, "record_gaps", False) and unmarked:
            hook.record_events(
                gap_events(unmarked, recorded_by="airflow integrity audit reconcile", as_markers=True)
            )
            print(f"Recorded {len(unmarked)} reconciliation.gap event(s).")
    except StoreError as exc:
        _fail(str(exc))
        return
    if gaps:
        raise SystemExit(1)


def _run_keys(dag_id: str | None, since: str | None) -> list[tuple[str, str]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from airflow_integrity.store.audit.event import parse_timestamp

    query = select(DagRun.dag_id, DagRun.run_id).order_by(DagRun.id)
    if dag_id:
        query = query.where(DagRun.dag_id == dag_id)
    if since:
        query = query.where(func.coalesce(DagRun.start_date, DagRun.queued_at) >= parse_timestamp(since))
    with create_session() as session:
        return [(row.dag_id, row.run_id) for row in session.execute(query)]


def _read(read_runs: Any, keys: list[tuple[str, str]]) -> Any:
    from airflow.utils.session import create_session

    with create_session() as session:
        return read_runs(session, keys)
