"""Code run in the child processes of ``test_idempotent_processes``: each child drives the same guarded-execution
core the operators use (``IdempotencyGuard.run``), against the store whose URL it is given. Holds no tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from airflow_integrity.hooks.idempotency import IdempotencyClaim, IdempotencyGuard
from airflow_integrity.store.ledger.codec import inputs_digest

INPUTS = {"claim_id": 42, "amount": "125.40"}
NAMESPACE = "processes"


def guard(url: str, key: str, role: str, lease_seconds: float) -> IdempotencyGuard:
    """A guard on the store at ``url`` (through the ``integrity_default`` connection, as in a task)."""
    os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] = url
    return IdempotencyGuard(
        key=key,
        fingerprint=inputs_digest(INPUTS),
        namespace=NAMESPACE,
        lease_seconds=lease_seconds,
        holder={"role": role},
    )


def commit_effect(effects: str, claim: IdempotencyClaim) -> dict[str, Any]:
    """The guarded side effect: one line appended to a file, tagged with the holder's fencing token."""
    with open(effects, "a", encoding="utf-8") as fh:
        fh.write(f"{claim.key} token={claim.fencing_token} pid={os.getpid()}\n")
    return {"paid_by": os.getpid(), "token": claim.fencing_token}


def racer(url: str, key: str, effects: str, barrier: Any, out: Any) -> None:
    """Start with the others at the barrier, then run the guarded work (it takes 0.3 s) or get its result."""
    g = guard(url, key, "racer", 30.0)

    def work(claim: IdempotencyClaim) -> dict[str, Any]:
        time.sleep(0.3)
        return commit_effect(effects, claim)

    barrier.wait()
    result = g.run(work)
    out.put({"pid": os.getpid(), "status": result.status.value, "value": result.value})


def doomed(url: str, key: str, effects: str, started: str) -> None:
    """Claim with a short lease, mark the work as started, and stay mid-work (before the effect) until killed."""
    g = guard(url, key, "doomed", 1.5)

    def work(claim: IdempotencyClaim) -> dict[str, Any]:
        Path(started).write_text(str(claim.fencing_token))
        time.sleep(600)
        return commit_effect(effects, claim)

    g.run(work)


def retry(url: str, key: str, effects: str, out: Any) -> None:
    """The retry of a killed attempt: waits while the dead holder's lease lasts, then takes over."""
    began = time.monotonic()
    result = guard(url, key, "retry", 30.0).run(lambda claim: commit_effect(effects, claim))
    out.put({"status": result.status.value, "value": result.value, "waited": time.monotonic() - began})


def sleeper(url: str, key: str, effects: str, started: str, out: Any) -> None:
    """Hold the key under its heartbeat, stall (the test stops this process), then try to record a result."""
    g = guard(url, key, "sleeper", 1.0)

    def work(claim: IdempotencyClaim) -> dict[str, Any]:
        Path(started).write_text(str(claim.fencing_token))
        time.sleep(1.0)  # the test freezes the process here, past the lease
        return {"paid_by": "sleeper", "token": claim.fencing_token}

    try:
        result = g.run(work)
        out.put({"outcome": "completed", "value": result.value})
    except Exception as exc:
        out.put({"outcome": type(exc).__name__, "message": str(exc)})
