"""Compensations exactly once with real processes: eight compensators of one run racing, and one SIGKILLed
mid-undo and taken over. On SQLite and PostgreSQL stores (``store_conn_env``)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.operators import compensation_workers as workers

pytestmark = pytest.mark.integration
RACERS = 8
KEYS = ("erp-post-1", "credit-hold-1")  # made in this order, so undone in the other


@pytest.fixture(scope="module")
def ctx():  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.operators.compensation_workers"])
    return context


def _made() -> None:
    for key, task_id in zip(KEYS, ("post_invoice", "hold_credit"), strict=True):
        workers.make_effect(key, task_id)


def _stop(proc) -> None:  # type: ignore[no-untyped-def]
    if proc.is_alive():
        proc.kill()
    proc.join(10)


def test_eight_racing_compensators_undo_each_effect_once_newest_first(
    ctx, store, store_conn_env: str, tmp_path: Path
) -> None:
    _made()
    undone = tmp_path / "undone.txt"
    barrier, out = ctx.Barrier(RACERS), ctx.Queue()
    procs = [
        ctx.Process(target=workers.racer, args=(store_conn_env, str(undone), barrier, out)) for _ in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [out.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            _stop(proc)

    lines = undone.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["credit-hold-1", "erp-post-1"], (lines, reports)
    assert all(" token=1 " in line for line in lines)
    for position in range(len(KEYS)):
        statuses = [r["statuses"][position] for r in reports]
        assert sorted(statuses) == ["claimed"] + ["replay"] * (RACERS - 1), statuses


def test_a_compensator_killed_mid_undo_is_taken_over_and_undoes_once(
    ctx, store, store_conn_env: str, tmp_path: Path
) -> None:
    _made()
    undone, started = tmp_path / "undone.txt", tmp_path / "started"
    doomed = ctx.Process(target=workers.doomed, args=(store_conn_env, str(undone), str(started)))
    doomed.start()
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the doomed compensator never started undoing"
            time.sleep(0.02)
        doomed.kill()
        doomed.join(10)
        out = ctx.Queue()
        survivor = ctx.Process(target=workers.survivor, args=(store_conn_env, str(undone), out))
        survivor.start()
        report = out.get(timeout=120)
        survivor.join(10)
    finally:
        _stop(doomed)

    assert report["statuses"] == ["takeover", "claimed"]
    lines = undone.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [["credit-hold-1", "token=2"], ["erp-post-1", "token=1"]]
    with IdempotencyLedger(store, namespace=workers.NAMESPACE) as ledger:
        undo = ledger.get("credit-hold-1/compensation")
    assert undo is not None and (undo.state, undo.fencing_token) == (State.COMPLETED, 2)
