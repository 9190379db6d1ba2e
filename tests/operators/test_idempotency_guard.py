"""The guarded-execution core every idempotent operator uses, against real SQLite and PostgreSQL stores:
decisions, failures, bad input and the audit events each of them leaves."""

from __future__ import annotations

import pytest

from airflow_integrity.compat import AirflowFailException
from airflow_integrity.hooks.idempotency import (
    HolderBusyError,
    IdempotencyGuard,
    current_claim,
    fingerprint_of,
)
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration
ORIGIN = {"dag_id": "claims", "run_id": "manual__1", "task_id": "pay"}


def _guard(key: str, inputs: object, **kwargs: object) -> IdempotencyGuard:
    return IdempotencyGuard(
        key=key,
        fingerprint=inputs_digest(inputs),
        namespace="guard",
        holder=ORIGIN,
        **kwargs,  # type: ignore[arg-type]
    )


def _entry(url: str, key: str):  # type: ignore[no-untyped-def]
    with IdempotencyLedger(IntegrityStore(StoreLocation.from_url(url)), namespace="guard") as ledger:
        return ledger.get(key)


@pytest.mark.requirement("part11.11.10f")
def test_first_attempt_runs_later_ones_replay_and_other_inputs_are_refused(store_conn_env: str) -> None:
    seen = []

    def work(claim):  # type: ignore[no-untyped-def]
        seen.append((claim.fencing_token, current_claim()))
        return {"paid": 42}

    first = _guard("claim-42", {"amount": 10}).run(work)
    again = _guard("claim-42", {"amount": 10}).run(work)
    assert (first.value, first.status.value, first.fencing_token) == ({"paid": 42}, "claimed", 1)
    assert (again.value, again.replayed) == ({"paid": 42}, True)
    assert len(seen) == 1 and seen[0][0] == 1 and seen[0][1].key == "claim-42"
    assert current_claim() is None

    with pytest.raises(AirflowFailException) as refused:
        _guard("claim-42", {"amount": 99}).run(work)
    message = str(refused.value)
    assert inputs_digest({"amount": 10}) in message and inputs_digest({"amount": 99}) in message
    assert "dag_id=claims" in message and "run_id=manual__1" in message and "task_id=pay" in message
    assert len(seen) == 1
    events = [e["event"] for e in idempotency_events(store_conn_env, "claim-42")]
    assert events == ["claimed", "completed", "replayed", "fingerprint_mismatch"]


def test_a_failed_attempt_reopens_the_key_unless_it_failed_without_retry(store_conn_env: str) -> None:
    def broken(claim):  # type: ignore[no-untyped-def]
        raise ConnectionError("payments API unreachable")

    with pytest.raises(ConnectionError):
        _guard("claim-7", {"a": 1}).run(broken)
    assert _entry(store_conn_env, "claim-7").retryable is True
    retried = _guard("claim-7", {"a": 1}).run(lambda claim: {"token": claim.fencing_token})
    assert retried.value == {"token": 2}

    def refuses(claim):  # type: ignore[no-untyped-def]
        raise AirflowFailException("claim 8 is fraudulent")

    with pytest.raises(AirflowFailException, match="fraudulent"):
        _guard("claim-8", {"a": 1}).run(refuses)
    entry = _entry(store_conn_env, "claim-8")
    assert (entry.state, entry.retryable) == (State.FAILED, False)
    with pytest.raises(AirflowFailException, match=r"failed without retry.*ledger release 'claim-8'"):
        _guard("claim-8", {"a": 1}).run(lambda claim: "never runs")
    events = [(e["event"], e["details"].get("retryable")) for e in idempotency_events(store_conn_env, "claim-8")]
    assert events == [("claimed", None), ("failed", False), ("failed_permanently", None)]


def test_a_live_holder_makes_others_wait_or_defer(store, store_conn_env: str) -> None:
    with IdempotencyLedger(store, namespace="guard") as ledger:
        held = ledger.claim("claim-9", fingerprint=inputs_digest({"a": 1}), holder={"task_id": "other"})
        with pytest.raises(HolderBusyError, match=r"being worked on by .*task_id=other"):
            _guard("claim-9", {"a": 1}).run(lambda claim: "never runs", wait=False)
        assert held.lease is not None
        ledger.complete(held.lease, {"done_by": "other"})
    waited = _guard("claim-9", {"a": 1}).run(lambda claim: "never runs", wait=True)
    assert waited.value == {"done_by": "other"}
    assert [e["event"] for e in idempotency_events(store_conn_env, "claim-9")] == ["conflict", "replayed"]


def test_bad_input_gets_errors_naming_the_problem_and_the_fix(store_conn_env: str) -> None:
    with pytest.raises(AirflowFailException, match=r"is empty.*claim-\{\{ params.claim_id \}\}"):
        _guard("", {"a": 1})
    with pytest.raises(AirflowFailException, match=r"600 characters long; the limit is 512.*digest"):
        _guard("k" * 600, {"a": 1})
    with pytest.raises(AirflowFailException, match=r"inputs\['when'\].*fingerprint_inputs="):
        fingerprint_of({"when": object()}, key="claim-1", what="inputs of task 'pay'")

    ran = []

    def returns_a_set(claim):  # type: ignore[no-untyped-def]
        ran.append(claim.fencing_token)
        return {"ids": {1, 2}}

    with pytest.raises(AirflowFailException, match=r"result\['ids'\] is a builtins.set.*ledger release 'claim-5'"):
        _guard("claim-5", {"a": 1}).run(returns_a_set)
    entry = _entry(store_conn_env, "claim-5")
    # The work ran once; running it again could repeat its effect, so a person must look first.
    assert ran == [1] and (entry.state, entry.retryable) == (State.FAILED, False)
