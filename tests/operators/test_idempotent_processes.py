"""Exactly-once guarantees of the operators' guarded-execution core with real processes: sixteen racing
attempts, an attempt killed with SIGKILL mid-work, and a stalled holder that wakes up after losing its lease.

The children come from a ``forkserver`` that imports Airflow once: each is a separate process with its own
database connections, but sixteen of them start in a fraction of a second instead of sixteen Airflow imports.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.operators import idempotent_workers as workers
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration
RACERS = 16


@pytest.fixture(scope="module")
def ctx():  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.operators.idempotent_workers"])
    return context


def _wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)
    return path.read_text()


def _stop(proc) -> None:  # type: ignore[no-untyped-def]
    if proc.is_alive():
        proc.kill()
    proc.join(10)


def test_sixteen_processes_run_the_guarded_work_exactly_once(ctx, store, store_url: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    barrier, out = ctx.Barrier(RACERS), ctx.Queue()
    procs = [
        ctx.Process(target=workers.racer, args=(store_url, "claim-race", str(effects), barrier, out))
        for _ in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [out.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            _stop(proc)
    lines = effects.read_text().splitlines()
    assert len(lines) == 1
    winners = [r for r in reports if r["status"] == "claimed"]
    assert len(winners) == 1
    assert {r["status"] for r in reports} == {"claimed", "replay"}
    assert all(r["value"] == winners[0]["value"] for r in reports)
    assert lines[0] == f"claim-race token=1 pid={winners[0]['pid']}"
    events = [e["event"] for e in idempotency_events(store_url, "claim-race")]
    assert events.count("claimed") == 1 and events.count("completed") == 1
    assert events.count("replayed") == RACERS - 1


def test_a_killed_attempt_is_taken_over_after_its_lease_and_the_effect_happens_once(
    ctx, store, store_url: str, tmp_path: Path
) -> None:
    effects, started = tmp_path / "effects.txt", tmp_path / "started"
    victim = ctx.Process(target=workers.doomed, args=(store_url, "claim-kill", str(effects), str(started)))
    victim.start()
    try:
        assert _wait_for(started) == "1"
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        assert victim.exitcode == -signal.SIGKILL
        out = ctx.Queue()
        retry = ctx.Process(target=workers.retry, args=(store_url, "claim-kill", str(effects), out))
        retry.start()
        report = out.get(timeout=60)
        retry.join(10)
    finally:
        _stop(victim)
    assert report["status"] == "takeover"
    assert report["value"]["token"] == 2
    assert effects.read_text().splitlines() == [f"claim-kill token=2 pid={report['value']['paid_by']}"]
    events = idempotency_events(store_url, "claim-kill")
    assert [e["event"] for e in events] == ["claimed", "conflict", "takeover", "completed"]
    assert events[2]["details"]["previous_holder"]["role"] == "doomed"
    with IdempotencyLedger(store, namespace=workers.NAMESPACE) as ledger:
        entry = ledger.get("claim-kill")
        assert entry is not None and entry.fencing_token == 2
        assert ledger.load_result(entry) == report["value"]


def test_a_holder_that_stalls_past_its_lease_cannot_complete(ctx, store, store_url: str, tmp_path: Path) -> None:
    effects, started = tmp_path / "effects.txt", tmp_path / "started"
    out = ctx.Queue()
    stalled = ctx.Process(target=workers.sleeper, args=(store_url, "claim-stall", str(effects), str(started), out))
    stalled.start()
    try:
        _wait_for(started)
        os.kill(stalled.pid, signal.SIGSTOP)  # a frozen VM, a long GC pause: no heartbeat, no progress
        time.sleep(1.5)
        retry_out = ctx.Queue()
        retry = ctx.Process(target=workers.retry, args=(store_url, "claim-stall", str(effects), retry_out))
        retry.start()
        taken = retry_out.get(timeout=60)
        retry.join(10)
        os.kill(stalled.pid, signal.SIGCONT)
        woke = out.get(timeout=60)
    finally:
        if stalled.pid:
            os.kill(stalled.pid, signal.SIGCONT)
        _stop(stalled)
    assert taken["status"] == "takeover" and taken["value"]["token"] == 2
    assert woke["outcome"] == "StaleHolderError"
    assert "fencing token 1" in woke["message"] and "taken over" in woke["message"]
    # The stale holder's result is not recorded: the takeover's is, and it is the only effect.
    assert effects.read_text().splitlines() == [f"claim-stall token=2 pid={taken['value']['paid_by']}"]
    with IdempotencyLedger(store, namespace=workers.NAMESPACE) as ledger:
        entry = ledger.get("claim-stall")
        assert entry is not None and ledger.load_result(entry) == taken["value"]
    assert "stale_holder_refused" in [e["event"] for e in idempotency_events(store_url, "claim-stall")]
