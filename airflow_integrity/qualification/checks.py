"""The checks of a qualification, each proving one property of the deployment it runs in.

Every check takes the :class:`Context` and returns a :class:`~.report.CheckResult`; none raises. What a check
writes is honest: probe events are of type ``qualification.probe``, the race's key lives in the
``qualification`` namespace, and everything else happens in a scratch store or in rolled-back transactions.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from airflow_integrity.qualification.report import CheckResult
from airflow_integrity.settings import IntegritySettings
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.schema import AUDIT_TABLES, EVENT
from airflow_integrity.store.audit.signing import CheckpointKey, newest_checkpoint, store_id
from airflow_integrity.store.audit.verify import append_only_warnings, verify

PROBE_EVENT = "qualification.probe"
DISTRIBUTION = "airflow-integrity"
CLAIMANTS = 4
MAX_CLOCK_SKEW = 2.0


@dataclass
class Context:
    """What the checks work with: the deployment's store and settings, and what earlier checks found."""

    store: IntegrityStore
    settings: IntegritySettings
    keys: list[CheckpointKey]
    key_problem: str | None
    qualification_id: str
    runtime_role: str | None = None
    host: str = field(default_factory=socket.gethostname)
    probe_seqs: list[int] = field(default_factory=list)

    @property
    def business_key(self) -> str:
        return f"qualification-{self.qualification_id}"

    @property
    def actor(self) -> str:
        return f"qualify@{self.host}"


def _check(name: str) -> Callable[[Callable[[Context], CheckResult]], Callable[[Context], CheckResult]]:
    """A check never raises: what it could not do is its failure, with the error."""

    def wrap(check: Callable[[Context], CheckResult]) -> Callable[[Context], CheckResult]:
        def run(ctx: Context) -> CheckResult:
            try:
                return check(ctx)
            except Exception as exc:
                return CheckResult(name, False, f"could not be checked: {type(exc).__name__}: {exc}")

        run.__name__ = check.__name__
        return run

    return wrap


@_check("installation")
def installation(ctx: Context) -> CheckResult:
    """The installed versions, and that each requirement of the package is met."""
    from importlib import metadata

    from packaging.requirements import Requirement

    versions = {"python": ".".join(map(str, sys.version_info[:3]))}
    unmet = []
    for line in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{requirement} (not installed)")
            continue
        versions[requirement.name] = installed
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} (installed {installed})")
    versions[DISTRIBUTION] = metadata.version(DISTRIBUTION)
    for extra in ("apache-airflow-providers-standard", "apache-airflow-providers-celery"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[extra] = metadata.version(extra)
    if unmet:
        return CheckResult(
            "installation", False, "unmet requirements: " + "; ".join(unmet), {"versions": versions}
        )
    summary = (
        f"{DISTRIBUTION} {versions[DISTRIBUTION]} on Airflow {versions.get('apache-airflow')}, requirements met"
    )
    return CheckResult("installation", True, summary, {"versions": versions})


@_check("configuration")
def configuration(ctx: Context) -> CheckResult:
    """The audit listeners record, and a store error has a declared policy."""
    settings = ctx.settings
    facts = {
        "audit_listeners": settings.audit_listeners,
        "audit_on_store_error": settings.audit_on_store_error,
        "checkpoint_key_conn_id": settings.checkpoint_key_conn_id or None,
        "checkpoint_interval": settings.checkpoint_interval,
        "completeness_interval": settings.completeness_interval,
        "approval_settle_seconds": settings.approval_settle_seconds,
    }
    if not settings.audit_listeners:
        return CheckResult(
            "configuration",
            False,
            "[integrity] audit_listeners is off: task and run states are not recorded",
            facts,
        )
    summary = f"listeners on, store errors: {settings.audit_on_store_error}"
    if settings.completeness_interval <= 0:
        return CheckResult(
            "configuration",
            False,
            "[integrity] completeness_interval is 0: missing events are never looked for",
            facts,
        )
    return CheckResult("configuration", True, summary, facts)


@_check("store")
def store(ctx: Context) -> CheckResult:
    """The store is reachable and its schema is the one this version expects (nothing is migrated)."""
    status = ctx.store.describe()
    facts = status.as_dict()
    if not status.current:
        return CheckResult(
            "store",
            False,
            f"schema at {status.revision or 'none'}, this version needs {status.head}: run "
            "`airflow integrity db migrate` as the store's owner",
            facts,
        )
    return CheckResult(
        "store", True, f"{status.backend} store {status.store_id} at {status.location}, schema current", facts
    )


@_check("audit_probe")
def audit_probe(ctx: Context) -> CheckResult:
    """Probe events, recorded as such, are chained, read back unchanged, and the whole trail verifies."""
    note = "written by `airflow integrity qualify` to prove recording; not a business event"
    events = [
        AuditEvent(
            PROBE_EVENT,
            ctx.actor,
            business_key=ctx.business_key,
            details={"qualification_id": ctx.qualification_id, "probe": number, "note": note},
        )
        for number in range(1, 4)
    ]
    recorded = AuditLog(ctx.store).append_many(events)
    ctx.probe_seqs = [record.seq for record in recorded]
    read = [
        record
        for _, record in iter_records(ctx.store, business_key=ctx.business_key)
        if not isinstance(record, str) and record.event_type == PROBE_EVENT
    ]
    result = verify(ctx.store, key=ctx.keys or None)
    facts = {"probe_seqs": ctx.probe_seqs, "verification": result.as_dict()}
    if [r.details for r in read] != [dict(e.details) for e in events]:
        return CheckResult("audit_probe", False, "the probe events did not read back as they were recorded", facts)
    if not result.ok:
        return CheckResult("audit_probe", False, f"the trail does not verify: {result.summary()}", facts)
    summary = f"3 probe events at seq {ctx.probe_seqs[0]}-{ctx.probe_seqs[-1]}; {result.summary()}"
    return CheckResult("audit_probe", True, summary, facts)


@_check("protections")
def protections(ctx: Context) -> CheckResult:
    """The trail refuses change in the database itself: triggers in place, and UPDATE, DELETE (and TRUNCATE)
    refused for the role this deployment connects as; on PostgreSQL, that role holds no more than the runtime
    privileges."""
    store_ = ctx.store
    problems: list[str] = []
    facts: dict[str, Any] = {}
    problems.extend(append_only_warnings(store_))
    seq = ctx.probe_seqs[-1] if ctx.probe_seqs else None
    attempts = {
        "UPDATE": f"UPDATE {EVENT} SET body = body WHERE seq = {seq}",
        "DELETE": f"DELETE FROM {EVENT} WHERE seq = {seq}",
    }
    if store_.backend == "postgresql":
        attempts["TRUNCATE"] = f"TRUNCATE {', '.join(AUDIT_TABLES['postgresql'])}"
    if seq is None:
        problems.append("no probe event to attempt changes on (the audit probe failed)")
    else:
        for statement, sql in attempts.items():
            outcome = _attempt(store_, sql)
            facts[statement] = "accepted (rolled back)" if outcome == "accepted" else outcome
            if outcome == "accepted":
                problems.append(f"{statement} of the trail was accepted (and rolled back)")
            elif outcome != "refused":
                problems.append(f"{statement} of the trail was {outcome}")
    if store_.backend == "postgresql":
        problems.extend(_role_problems(ctx, facts))
    if problems:
        return CheckResult("protections", False, "; ".join(problems), facts)
    refused = ", ".join(attempts)
    return CheckResult("protections", True, f"triggers in place; {refused} refused", facts)


_APPEND_ONLY = "the audit trail is append-only"  # what the store's triggers answer a change with
_INSUFFICIENT_PRIVILEGE = "42501"


def _attempt(store_: IntegrityStore, sql: str) -> str:
    """``"refused"`` (by a trigger or for want of the privilege), ``"accepted"``, or what else went wrong. Whatever
    happens, it is rolled back; on PostgreSQL it waits at most 2 s for a lock, so no writer queues behind it."""
    with store_.engine.connect() as conn:
        transaction = conn.begin()
        try:
            if store_.backend == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            conn.execute(text(sql))
        except Exception as exc:
            cause = getattr(exc, "orig", exc)
            if _APPEND_ONLY in str(cause) or getattr(cause, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
                return "refused"
            return f"not tried to the end: {type(cause).__name__}: {str(cause).strip().splitlines()[0][:200]}"
        finally:
            transaction.rollback()
    return "accepted"


def _role_problems(ctx: Context, facts: dict[str, Any]) -> list[str]:
    from airflow_integrity.store import roles

    with ctx.store.read() as conn:
        current = str(conn.execute(text("SELECT current_user")).scalar_one())
        superuser = bool(conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar())
        owner = conn.execute(
            text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = :name"), {"name": EVENT}
        ).scalar()
    facts.update({"connected_as": current, "superuser": superuser, "owner": owner})
    role = ctx.runtime_role or (None if current == owner or superuser else current)
    facts["runtime_role_checked"] = role
    if role is None:
        who = "a superuser" if superuser else "the store's owner"
        return [
            f"connected as {who} ({current}), who can switch the triggers off: connect as the runtime role the "
            "components use (`airflow integrity db migrate --runtime-role ROLE` grants it), or name it with "
            "--runtime-role when qualifying as the owner"
        ]
    return [f"runtime role {role!r}: {problem}" for problem in roles.check_runtime_role(ctx.store, role)]


@_check("tamper_detection")
def tamper_detection(ctx: Context) -> CheckResult:
    """On a scratch copy of the probe events (never the real trail), an edited event and a deleted one are named
    by verification at their sequence numbers."""
    import sqlite3

    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="integrity-qualify-") as folder:
        path = Path(folder) / "scratch.db"
        scratch = IntegrityStore(StoreLocation.sqlite(path, source="qualification scratch store"))
        try:
            scratch.migrate()
            AuditLog(scratch).append_many(
                [AuditEvent(PROBE_EVENT, ctx.actor, details={"scratch": number}) for number in range(1, 6)]
            )
            if not verify(scratch).ok:
                return CheckResult("tamper_detection", False, "the untouched scratch trail did not verify")
            with sqlite3.connect(path) as raw:
                raw.execute(f"DROP TRIGGER IF EXISTS {EVENT}_no_update")
                raw.execute(f"DROP TRIGGER IF EXISTS {EVENT}_no_delete")
                raw.execute(
                    f"UPDATE {EVENT} SET body = replace(body, '\"scratch\":2', '\"scratch\":7') WHERE seq = 2"
                )
            edited = verify(scratch)
            found["edited"] = {"first_bad_seq": edited.first_bad_seq, "reason": edited.reason}
            with sqlite3.connect(path) as raw:
                raw.execute(
                    f"UPDATE {EVENT} SET body = replace(body, '\"scratch\":7', '\"scratch\":2') WHERE seq = 2"
                )
                raw.execute(f"DELETE FROM {EVENT} WHERE seq = 4")
            deleted = verify(scratch)
            found["deleted"] = {"first_bad_seq": deleted.first_bad_seq, "reason": deleted.reason}
        finally:
            scratch.engine.dispose()
    if (edited.ok, edited.first_bad_seq, deleted.ok, deleted.first_bad_seq) != (False, 2, False, 4):
        return CheckResult("tamper_detection", False, f"tampering was not named where it was made: {found}", found)
    summary = f"an edit named at seq 2 ({edited.reason}), a deletion at seq 4 ({deleted.reason})"
    return CheckResult("tamper_detection", True, summary, found)


@_check("ledger_race")
def ledger_race(ctx: Context) -> CheckResult:
    """Four processes claim one key at once: the work runs once and all four get its result."""
    from airflow_integrity.qualification import race

    url = ctx.store.location.url.render_as_string(hide_password=False)
    key = f"race-{ctx.qualification_id}"
    spawn = multiprocessing.get_context("spawn")
    barrier, out = spawn.Barrier(CLAIMANTS), spawn.Queue()
    processes = [
        spawn.Process(target=race.claimant, args=(url, key, barrier, out), daemon=True) for _ in range(CLAIMANTS)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    try:
        reports = [out.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    ran = [result for did_run, result in reports if did_run]
    results = {str(result) for _, result in reports}
    facts = {
        "namespace": race.NAMESPACE,
        "key": key,
        "claimants": CLAIMANTS,
        "ran": len(ran),
        "results": sorted(results),
        "seconds": round(time.monotonic() - started, 2),
    }
    if len(ran) != 1 or len(results) != 1:
        return CheckResult("ledger_race", False, f"the work ran {len(ran)} times for {CLAIMANTS} claims", facts)
    return CheckResult("ledger_race", True, f"{CLAIMANTS} processes, the work ran once, all got its result", facts)


@_check("checkpoint")
def checkpoint(ctx: Context) -> CheckResult:
    """A checkpoint key is configured and loads, and the newest checkpoint verifies with it."""
    if ctx.key_problem:
        return CheckResult("checkpoint", False, ctx.key_problem)
    with ctx.store.read() as conn:
        newest = newest_checkpoint(conn)
        identity = store_id(conn)
    keys = [f"{key.algorithm} {key.key_id}" for key in ctx.keys]
    if newest is None:
        return CheckResult(
            "checkpoint", False, "no checkpoint signed yet: `airflow integrity audit checkpoint`", {"keys": keys}
        )
    facts = {"keys": keys, "newest": {"seq": newest.seq, "created_at": newest.created_at, "key_id": newest.key_id}}
    if not any(newest.signed_by(key, identity) for key in ctx.keys):
        return CheckResult(
            "checkpoint", False, "the newest checkpoint does not verify with the configured key", facts
        )
    return CheckResult(
        "checkpoint",
        True,
        f"newest checkpoint (seq {newest.seq}, {newest.created_at}) verifies with {keys[0]}",
        facts,
    )


@_check("clock")
def clock(ctx: Context) -> CheckResult:
    """Event times come from the store's clock, and it agrees with this host's within 2 s; whether the kernel
    considers the host's clock synchronised is reported (a fact for the reviewer, not a failure)."""
    sql = "SELECT now()" if ctx.store.backend == "postgresql" else "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"
    before = datetime.now(UTC)
    with ctx.store.read() as conn:
        value = conn.execute(text(sql)).scalar_one()
    after = datetime.now(UTC)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    skew = (moment - (before + (after - before) / 2)).total_seconds()
    source = "the PostgreSQL server's clock" if ctx.store.backend == "postgresql" else "this host's clock (SQLite)"
    synchronised = _synchronised()
    facts = {"event_time_source": source, "skew_seconds": round(skew, 3), "host_synchronised": synchronised}
    if not math.isfinite(skew) or abs(skew) > MAX_CLOCK_SKEW:
        return CheckResult("clock", False, f"the store's clock is {skew:+.1f} s from this host's", facts)
    sync = {True: "synchronised", False: "NOT synchronised (check NTP)", None: "sync state unknown"}
    summary = f"event times from {source}, {skew:+.3f} s from this host; host clock {sync[synchronised]}"
    return CheckResult("clock", True, summary, facts)


def _synchronised() -> bool | None:
    """The kernel's view of this host's clock synchronisation (Linux ``adjtimex``), or ``None``."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buffer = ctypes.create_string_buffer(256)  # struct timex; only the return value is read
        state = libc.adjtimex(buffer)
    except Exception:
        return None
    return None if state < 0 else state != 5  # TIME_ERROR: not synchronised


@_check("spool")
def spool(ctx: Context) -> CheckResult:
    """Nothing waits in this host's spool, and nothing was set aside."""
    from airflow_integrity.store.audit.spool import AuditSpool

    local = AuditSpool(ctx.settings.spool_dir)
    pending = local.pending()
    set_aside = local.refused_path.exists() and local.refused_path.stat().st_size > 0
    facts = {"spool_dir": str(ctx.settings.spool_dir), "pending": pending, "set_aside": set_aside}
    if pending:
        return CheckResult(
            "spool", False, f"{pending} events wait in the spool: `airflow integrity audit drain`", facts
        )
    if set_aside:
        return CheckResult(
            "spool", False, f"the store refused spooled events, set aside in {local.refused_path}", facts
        )
    return CheckResult("spool", True, "empty, nothing set aside", facts)


CHECKS = (
    installation,
    configuration,
    store,
    audit_probe,
    protections,
    tamper_detection,
    ledger_race,
    checkpoint,
    clock,
    spool,
)
