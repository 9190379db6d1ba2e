"""Once the guarded work has returned, its outcome never becomes "run the work again".

The store fails to take the completion for real: on SQLite another connection holds the write lock past the
busy timeout ("database is locked"); on PostgreSQL the ledger's connection is terminated by the server, or a
trigger refuses the completion for as long as the lease lasts. A completion that fails for a while is
retried while the lease holds; one that cannot be written at all settles the key as failed without retry,
so that only a person re-opens it, and says that the effect may have happened.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from airflow_integrity.compat import AirflowFailException
from airflow_integrity.hooks.idempotency import IdempotencyGuard
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.operators.support import idempotency_events
from tests.pg import terminate_other_sessions

pytestmark = pytest.mark.integration
ORIGIN = {"dag_id": "claims", "run_id": "manual__1", "task_id": "pay"}


def _guard(key: str, **kwargs: object) -> IdempotencyGuard:
    return IdempotencyGuard(
        key=key,
        fingerprint=inputs_digest({"claim": key}),
        namespace="guard",
        holder=ORIGIN,
        **kwargs,  # type: ignore[arg-type]
    )


def _store(url: str) -> IntegrityStore:
    return IntegrityStore(StoreLocation.from_url(url))


def _entry(url: str, key: str):  # type: ignore[no-untyped-def]
    with IdempotencyLedger(_store(url), namespace="guard") as ledger:
        return ledger.get(key)


@contextmanager
def _sqlite_write_lock(url: str, seconds: float) -> Iterator[Callable[[], None]]:
    """Hold the SQLite write lock from another connection for ``seconds`` once the yielded function is called
    (it returns once the lock is held)."""
    start, taken = threading.Event(), threading.Event()

    def hold() -> None:
        start.wait()
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        threading.Event().wait(seconds)
        conn.execute("COMMIT")
        conn.close()

    def take() -> None:
        start.set()
        assert taken.wait(10), "the lock holder did not get the lock"

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        yield take
    finally:
        start.set()
        holder.join()


def test_a_completion_the_store_refuses_once_is_retried_and_the_work_runs_once(
    store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SQLITE_BUSY_TIMEOUT", "0.2")
    runs: list[int] = []
    if store_conn_env.startswith("sqlite"):
        with _sqlite_write_lock(store_conn_env, seconds=1.0) as lock:

            def work(claim):  # type: ignore[no-untyped-def]
                runs.append(claim.fencing_token)
                lock()  # the store stays locked past the busy timeout while the completion is written
                return {"paid": 42}

            result = _guard("claim-1").run(work)
    else:

        def work(claim):  # type: ignore[no-untyped-def]
            runs.append(claim.fencing_token)
            assert terminate_other_sessions(store_conn_env) >= 1  # the ledger's connection is dropped
            return {"paid": 42}

        result = _guard("claim-1").run(work)

    assert (result.value, result.fencing_token, runs) == ({"paid": 42}, 1, [1])
    entry = _entry(store_conn_env, "claim-1")
    assert (entry.state, entry.fencing_token) == (State.COMPLETED, 1)
    again = _guard("claim-1").run(lambda claim: runs.append(claim.fencing_token))
    assert (again.replayed, again.value, runs) == (True, {"paid": 42}, [1])
    events = [e["event"] for e in idempotency_events(store_conn_env, "claim-1")]
    assert events == ["claimed", "completed", "replayed"]


def _refuse_completions(store: IntegrityStore) -> None:
    """A trigger that refuses every completion: the store never takes this one."""
    with store.begin() as conn:
        if store.backend == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION test_refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'completions are refused by the test'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse_completion BEFORE UPDATE ON integrity_ledger FOR EACH ROW "
                    "WHEN (NEW.state = 'completed') EXECUTE FUNCTION test_refuse_completion()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse_completion BEFORE UPDATE ON integrity_ledger "
                    "WHEN NEW.state = 'completed' BEGIN SELECT RAISE(ABORT, 'completions are refused'); END"
                )
            )


def test_a_completion_that_cannot_be_written_settles_the_key_for_a_person(store, store_conn_env: str) -> None:
    _refuse_completions(store)
    runs: list[int] = []

    def work(claim):  # type: ignore[no-untyped-def]
        runs.append(claim.fencing_token)
        return {"paid": 7}

    with pytest.raises(AirflowFailException) as failed:
        _guard("claim-7", lease_seconds=2).run(work)
    message = str(failed.value)
    assert "'claim-7' ran, but its completion could not be recorded" in message
    assert "the effect may have happened" in message and "marked failed without retry" in message
    assert "airflow integrity ledger release 'claim-7'" in message
    entry = _entry(store_conn_env, "claim-7")
    assert (entry.state, entry.retryable) == (State.FAILED, False)
    assert "effect may have happened" in entry.error

    # No later attempt runs the work again; a person must look first.
    with pytest.raises(AirflowFailException, match=r"failed without retry"):
        _guard("claim-7", lease_seconds=2).run(work)
    assert runs == [1]
    events = idempotency_events(store_conn_env, "claim-7")
    assert [e["event"] for e in events] == ["claimed", "failed", "failed_permanently"]
    assert events[1]["details"]["effect_may_have_happened"] is True
    assert events[1]["details"]["retryable"] is False


def test_failures_are_kept_with_their_secrets_masked(store_conn_env: str) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-payments-token")

    def work(claim):  # type: ignore[no-untyped-def]
        raise ConnectionError("login to https://svc:hunter2-payments-token@payments.internal refused")

    with pytest.raises(ConnectionError):
        _guard("claim-9").run(work)
    entry = _entry(store_conn_env, "claim-9")
    with IdempotencyLedger(_store(store_conn_env), namespace="guard") as ledger:
        history = ledger.history("claim-9")
    kept = [entry.error, *(h.error for h in history if h.error)]
    assert kept and all("***" in error and "hunter2" not in error for error in kept)
    failed = [e for e in idempotency_events(store_conn_env, "claim-9") if e["event"] == "failed"]
    assert "hunter2" not in failed[0]["details"]["error"] and "***" in failed[0]["details"]["error"]


def test_a_key_the_audit_trail_cannot_name_is_refused_before_it_is_claimed(store_conn_env: str) -> None:
    long_key = "claim-" + "9" * 506  # 512 characters: the longest key, and so the longest business key
    result = _guard(long_key).run(lambda claim: {"ok": len(claim.key)})
    assert result.value == {"ok": 512}
    assert [e["event"] for e in idempotency_events(store_conn_env, long_key)] == ["claimed", "completed"]
    with pytest.raises(AirflowFailException, match=r"business_key .* at most 512 characters"):
        _guard("claim-10", business_key="b" * 513)
    with pytest.raises(AirflowFailException, match=r"lease_seconds=inf .*'claim-10'.*not a positive, finite"):
        _guard("claim-10", lease_seconds=float("inf"))
    assert _entry(store_conn_env, "claim-10") is None


@pytest.mark.parametrize(
    "result",
    [{"name": "\ud800"}, {"n": 10**5000}],
    ids=["lone surrogate", "integer beyond printing"],
)
def test_a_result_that_cannot_be_encoded_never_reopens_the_key(store_conn_env: str, result: object) -> None:
    import sys

    sys.set_int_max_str_digits(4300)  # Python's default limit, whatever the test runner set
    runs: list[int] = []

    def work(claim):  # type: ignore[no-untyped-def]
        runs.append(claim.fencing_token)
        return result

    for _ in range(2):
        with pytest.raises(AirflowFailException, match=r"cannot be stored|failed without retry"):
            _guard("claim-11").run(work)
    assert runs == [1]
    entry = _entry(store_conn_env, "claim-11")
    assert (entry.state, entry.retryable) == (State.FAILED, False)


def test_a_timeout_while_the_completion_is_retried_settles_the_key_for_a_person(
    store, store_conn_env: str
) -> None:
    import signal

    from airflow_integrity.compat import AirflowTaskTimeout

    _refuse_completions(store)
    runs: list[int] = []

    def work(claim):  # type: ignore[no-untyped-def]
        runs.append(claim.fencing_token)
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # execution_timeout strikes while the completion is retried
        return {"paid": 12}

    def timeout(signum, frame):  # type: ignore[no-untyped-def]
        raise AirflowTaskTimeout("Timeout, PID: test")

    previous = signal.signal(signal.SIGALRM, timeout)
    try:
        with pytest.raises(
            AirflowFailException, match=r"ran, but then AirflowTaskTimeout.*effect may have happened"
        ):
            _guard("claim-12", lease_seconds=60).run(work)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    entry = _entry(store_conn_env, "claim-12")
    assert (entry.state, entry.retryable) == (State.FAILED, False)
    with pytest.raises(AirflowFailException, match=r"failed without retry"):
        _guard("claim-12").run(work)
    assert runs == [1]


def test_a_lease_renewal_that_crosses_the_completion_is_not_a_lost_lease(store_conn_env: str) -> None:
    import time

    def work(claim):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # a very short lease is renewed many times meanwhile
        return {"ok": claim.fencing_token}

    for attempt in range(5):
        result = _guard(f"claim-20-{attempt}", lease_seconds=0.03).run(work)
        assert result.value == {"ok": 1}
        events = [e["event"] for e in idempotency_events(store_conn_env, f"claim-20-{attempt}")]
        assert events == ["claimed", "completed"]


def test_a_key_with_a_nul_character_is_refused_before_it_is_claimed(store_conn_env: str) -> None:
    with pytest.raises(AirflowFailException, match=r"contains a NUL character"):
        _guard("claim-\x00-13")
    with pytest.raises(AirflowFailException, match=r"namespace .* without NUL"):
        IdempotencyGuard(key="claim-13", fingerprint=inputs_digest(1), namespace="pay\x00ments")
