"""Exactly-once under real concurrency and real crashes: many processes racing for one key, a holder killed
with SIGKILL mid-work, and a holder frozen with SIGSTOP past its lease that wakes up to find it taken over."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus, Lease, StaleHolderError
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.store.ledger import test_workers as workers

pytestmark = pytest.mark.integration

CLAIMANTS = 16
INPUTS = workers.INPUTS


def _create_effects(store: IntegrityStore) -> None:
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE effects (effect_key TEXT, fencing_token INTEGER, pid INTEGER)"))


def _effects(store: IntegrityStore) -> list[tuple[Any, ...]]:
    with store.read() as conn:
        return [tuple(row) for row in conn.execute(text("SELECT effect_key, fencing_token, pid FROM effects"))]


def _start(ctx: Any, target: Any, *args: Any) -> Any:
    proc = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def test_sixteen_processes_claiming_one_key_run_the_work_once_and_all_see_its_result(
    store: IntegrityStore,
) -> None:
    _create_effects(store)
    url = store.location.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(CLAIMANTS), ctx.Queue()
    procs = [_start(ctx, workers.racer, url, "claim-42", barrier, out) for _ in range(CLAIMANTS)]
    reports = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * CLAIMANTS

    effects = _effects(store)
    assert len(effects) == 1
    winner_pid = effects[0][2]
    results = [report["result"] for report in reports]
    assert results == [{"effect_no": 1, "paid_by": winner_pid, "token": 1}] * CLAIMANTS
    granted = [report for report in reports if report["statuses"][-1] == "claimed"]
    assert len(granted) == 1
    assert sum(report["statuses"][-1] == "replay" for report in reports) == CLAIMANTS - 1
    events = [entry.event for entry in workers.open_ledger(url).history("claim-42")]
    assert events.count("claimed") == 1
    assert events.count("completed") == 1
    assert events.count("replayed") == CLAIMANTS - 1
    assert "takeover" not in events


@pytest.mark.requirement("part11.11.10h")
def test_holder_killed_mid_work_is_taken_over_once_and_its_stale_completion_is_refused(
    store: IntegrityStore,
) -> None:
    _create_effects(store)
    url = store.location.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    claimed, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    retry = _start(ctx, workers.retry, url, "claim-7", go, out)
    doomed = _start(ctx, workers.doomed_holder, url, "claim-7", claimed)
    status, token, doomed_pid = claimed.get(timeout=60)
    assert (status, token) == ("claimed", 1)

    os.kill(doomed_pid, signal.SIGKILL)
    doomed.join(10)
    assert doomed.exitcode == -signal.SIGKILL
    killed_at = time.monotonic()
    go.set()
    report = out.get(timeout=60)
    retry.join(30)
    assert retry.exitcode == 0

    # The retry waited for the dead holder's lease, then took over with the next fencing token.
    assert report["statuses"][0] == "busy"
    assert report["statuses"][-1] == "takeover"
    assert report["result"]["token"] == 2
    assert time.monotonic() - killed_at < 15
    effects = _effects(store)
    assert effects == [("claim-7", 2, report["result"]["paid_by"])]

    ledger = workers.open_ledger(url)
    entry = ledger.get("claim-7")
    assert entry is not None
    assert entry.previous_holder is not None and entry.previous_holder["pid"] == doomed_pid
    stale = Lease(entry.namespace, entry.key, 1, 1.5, entry.created_at)
    with pytest.raises(StaleHolderError, match=r"fencing token 1.*taken over.*fencing token 2"):
        ledger.complete(stale, {"effect_no": 99})
    replay = ledger.claim("claim-7", fingerprint=inputs_digest(INPUTS))
    assert replay.status is ClaimStatus.REPLAY
    assert replay.result == report["result"]
    events = [(h.event, h.fencing_token) for h in ledger.history("claim-7")]
    assert events[:3] == [("claimed", 1), ("takeover", 2), ("completed", 2)]
    assert ("stale_holder_refused", 2) in events


def _lease_expiry(ledger: IdempotencyLedger, key: str) -> Any:
    entry = ledger.get(key)
    assert entry is not None
    return entry.lease_expires_at


def test_holder_frozen_past_its_lease_cannot_complete_after_a_takeover(store: IntegrityStore) -> None:
    url = store.location.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    sleeper = _start(ctx, workers.sleeper, url, "claim-9", ready, go, out)
    assert ready.wait(60)
    ledger = workers.open_ledger(url)

    # While its heartbeat runs, the holder keeps the key although its lease is only 1 s.
    time.sleep(2.0)
    busy = ledger.claim("claim-9", fingerprint=inputs_digest(INPUTS), holder={"role": "retry"})
    assert busy.status is ClaimStatus.BUSY
    assert busy.entry.holder["role"] == "sleeper"

    # Freeze it just after a renewal committed, so that it is not frozen inside a write (on SQLite a
    # process frozen while holding the write lock would block every writer).
    renewed_until = _lease_expiry(ledger, "claim-9")
    while _lease_expiry(ledger, "claim-9") == renewed_until:
        time.sleep(0.005)
    os.kill(sleeper.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while True:
            takeover = ledger.claim("claim-9", fingerprint=inputs_digest(INPUTS), holder={"role": "retry"})
            if takeover.status is not ClaimStatus.BUSY or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert takeover.status is ClaimStatus.TAKEOVER
        assert takeover.lease is not None and takeover.lease.fencing_token == 2
        ledger.complete(takeover.lease, {"paid_by": "retry"})
    finally:
        # Wake it before signalling: setting an Event waits for every waiter, a frozen one never answers.
        os.kill(sleeper.pid, signal.SIGCONT)
        go.set()
    report = out.get(timeout=60)
    sleeper.join(30)
    assert sleeper.exitcode == 0

    assert report["token"] == 1
    assert report["renewals"] >= 3
    assert report["heartbeat"].startswith("lost: ") and "taken over" in report["heartbeat"]
    assert report["complete"].startswith("refused: ") and "fencing token 2" in report["complete"]
    replay = ledger.claim("claim-9", fingerprint=inputs_digest(INPUTS))
    assert replay.status is ClaimStatus.REPLAY
    assert replay.result == {"paid_by": "retry"}
    refusals = [h.details for h in ledger.history("claim-9") if h.event == "stale_holder_refused"]
    assert {d["refused"] for d in refusals} == {"renew its lease", "complete it"}
    assert all(d["stale_token"] == 1 for d in refusals)
