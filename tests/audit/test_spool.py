"""The audit spool, with real processes: events keep their id and the time they happened, a replay killed
half-way records nothing twice, a line the store refuses is set aside instead of blocking the rest, and the
spool a short-lived process left behind is replayed when a component starts or by ``audit drain``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_integrity import audit
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent, AuditEventError
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.spool import SPOOL_KEY, AuditSpool
from airflow_integrity.store.audit.verify import verify
from tests.airflow_versions import integrity_cli
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
DOWN = "postgresql://u:pw@127.0.0.1:9/integrity"


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR", "spool")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(folder))
    return folder


def _events(url: str) -> list:  # type: ignore[type-arg]
    store = IntegrityStore(StoreLocation.from_url(url))
    AuditLog(store).chain_pending()
    return [r for _, r in iter_records(store) if not isinstance(r, str)]


def _spooled_ids(folder: Path) -> list[str]:
    lines = (folder / AuditSpool.FILE_NAME).read_text().splitlines()
    return [json.loads(line)["event"]["event_id"] for line in lines]


def _child(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_an_event_the_store_would_refuse_is_never_spooled(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    with pytest.raises(AuditEventError, match=r"details are \d+ bytes of JSON; the limit is 65536"):
        audit.record("claim.scanned", business_key="claim-1", details={"scan": "x" * 70_000})
    assert AuditSpool(spool_dir).pending() == 0
    assert audit.record("claim.step", business_key="claim-1") is None  # a valid event is still spooled
    assert AuditSpool(spool_dir).pending() == 1


@pytest.mark.requirement("alcoa.contemporaneous")
def test_a_spooled_event_keeps_its_id_and_the_time_it_happened(
    store_url: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    before = datetime.now(UTC)
    assert audit.record("claim.approved", business_key="claim-7", details={"by": "qa"}) is None
    (spooled_id,) = _spooled_ids(spool_dir)
    time.sleep(1.2)

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    report = IntegrityCheckHook().drain_spool()
    assert (report.replayed, report.set_aside, report.remaining) == (1, 0, 0)
    (event,) = _events(store_url)
    marker = event.details[SPOOL_KEY]
    occurred = datetime.fromisoformat(marker["occurred_at"].replace("Z", "+00:00"))
    assert event.event_id == spooled_id and event.details["by"] == "qa"
    assert before - timedelta(seconds=1) <= occurred <= before + timedelta(seconds=1)
    assert event.recorded_at - occurred >= timedelta(seconds=1)  # the store's time of the replay
    assert marker["host"] and marker["pid"] == os.getpid() and "127.0.0.1:9" in marker["reason"]


@pytest.mark.requirement("alcoa.enduring")
def test_a_replay_killed_half_way_records_nothing_twice(
    store: IntegrityStore, store_url: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    for i in range(12):
        assert audit.record("claim.step", business_key=f"claim-{i}") is None
    spooled = _spooled_ids(spool_dir)

    # Another process replays slowly and is killed (SIGKILL) after a few events reached the store.
    replayer = _child(
        f"""
        import sys, time
        from airflow_integrity.store import IntegrityStore, StoreLocation
        from airflow_integrity.store.audit.chain import AuditLog
        from airflow_integrity.store.audit.spool import AuditSpool
        log = AuditLog(IntegrityStore(StoreLocation.from_url({store_url!r})))
        def slow(event):
            log.record(event)
            print("recorded", flush=True)
            time.sleep(0.5)
        AuditSpool({str(spool_dir)!r}).drain(slow)
        """,
        {"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_url},
    )
    try:
        assert replayer.stdout is not None and replayer.stderr is not None
        for _ in range(4):
            line = replayer.stdout.readline().strip()
            assert line == "recorded", replayer.stderr.read()
    finally:
        os.killpg(replayer.pid, signal.SIGKILL)
        replayer.wait()
    assert AuditSpool(spool_dir).pending() == 12  # the killed replay left the spool whole

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    report = IntegrityCheckHook().drain_spool()
    assert (report.moved, report.set_aside, report.remaining) == (12, 0, 0)
    events = _events(store_url)
    assert sorted(e.event_id for e in events) == sorted(spooled)
    assert [e.business_key for e in events] == [f"claim-{i}" for i in range(12)]
    assert verify(IntegrityStore(StoreLocation.from_url(store_url))).ok


def test_an_event_whose_first_attempt_reached_the_store_is_not_recorded_again(
    store: IntegrityStore, store_url: str, spool_dir: Path
) -> None:
    event = AuditEvent("claim.paid", actor="worker@host", business_key="claim-3").identified()
    AuditLog(store).record(event)  # stored, but the writer never heard back, so it spooled it too
    AuditSpool(spool_dir).put(event, occurred_at=datetime.now(UTC), reason="connection dropped")
    report = AuditSpool(spool_dir).drain(AuditLog(store).record)
    assert (report.replayed, report.already_recorded, report.set_aside) == (0, 1, 0)
    assert [e.event_id for e in _events(store_url)] == [event.event_id]


def test_a_line_the_store_refuses_is_set_aside_and_the_rest_is_replayed(
    store: IntegrityStore, store_url: str, spool_dir: Path
) -> None:
    taken = AuditEvent("claim.paid", actor="worker@host", business_key="claim-1").identified()
    AuditLog(store).record(taken)
    spool = AuditSpool(spool_dir)
    now = datetime.now(UTC)
    spool.put(AuditEvent("claim.step", actor="w", business_key="first").identified(), occurred_at=now, reason="x")
    with open(spool.path, "a", encoding="utf-8") as handle:
        handle.write('{"event": {"event_type": "claim.step", "actor": "w"\n')  # torn by a crash
        # A line of the earlier version: no id, and details the store refuses (it was spooled unvalidated).
        handle.write(json.dumps({"event_type": "claim.scan", "actor": "w", "details": {"x": "y" * 70_000}}) + "\n")
    # Another event under an id the store holds with other content.
    spool.put(AuditEvent("claim.step", actor="w", event_id=taken.event_id), occurred_at=now, reason="x")
    spool.put(AuditEvent("claim.step", actor="w", business_key="last").identified(), occurred_at=now, reason="x")

    report = spool.drain(AuditLog(store).record)
    assert (report.replayed, report.already_recorded, report.set_aside, report.remaining) == (2, 0, 3, 0)
    assert spool.pending() == 0
    refused = [json.loads(line) for line in spool.refused_path.read_text().splitlines()]
    reasons = [entry["reason"] for entry in refused]
    assert "not a spooled audit event" in reasons[0]
    assert "limit is 65536" in reasons[1]
    assert f"event_id {taken.event_id} is already recorded" in reasons[2]
    assert all(entry["line"] for entry in refused)  # kept whole, for a person to review
    assert [e.business_key for e in _events(store_url)] == ["claim-1", "first", "last"]


def test_a_spool_left_by_a_short_lived_process_is_replayed_when_a_component_starts(
    store: IntegrityStore, store_url: str, spool_dir: Path
) -> None:
    env = {
        "AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR": "spool",
        "AIRFLOW__INTEGRITY__SPOOL_DIR": str(spool_dir),
    }
    # A worker pod records while the store is down, then goes away.
    worker = _child(
        """
        from airflow_integrity import audit
        for i in range(3):
            assert audit.record("claim.step", business_key=f"claim-{i}") is None
        """,
        {**env, "AIRFLOW_CONN_INTEGRITY_DEFAULT": DOWN},
    )
    assert worker.wait(120) == 0, worker.stderr.read() if worker.stderr else ""
    assert AuditSpool(spool_dir).pending() == 3

    # A component starts on that host once the store is back: the plugin's listener replays the spool.
    component = _child(
        """
        from airflow_integrity.listeners import dispatch, spool_drain
        spool_drain.on_starting(component=object())
        dispatch._pool().shutdown(wait=True)
        """,
        {**env, "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_url},
    )
    assert component.wait(120) == 0, component.stderr.read() if component.stderr else ""
    assert AuditSpool(spool_dir).pending() == 0
    assert [e.business_key for e in _events(store_url)] == ["claim-0", "claim-1", "claim-2"]


def test_audit_drain_reports_what_it_replayed_and_what_it_set_aside(
    store: IntegrityStore, store_url: str, spool_dir: Path
) -> None:
    spool = AuditSpool(spool_dir)
    now = datetime.now(UTC)
    for i in range(2):
        spool.put(
            AuditEvent("claim.step", actor="w", business_key=f"c{i}").identified(), occurred_at=now, reason="x"
        )
    with open(spool.path, "a", encoding="utf-8") as handle:
        handle.write("garbage\n")
    env = {
        **os.environ,
        "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_url,
        "AIRFLOW__INTEGRITY__SPOOL_DIR": str(spool_dir),
    }
    done = subprocess.run(
        [*integrity_cli(), "audit", "drain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert done.returncode == 1, done.stderr  # a line was set aside: someone must look at it
    assert "2 replayed, 0 already recorded, 1 set aside, 0 left in the spool" in done.stdout
    assert str(spool.refused_path) in done.stdout + done.stderr
    assert [e.business_key for e in _events(store_url)] == ["c0", "c1"]
    again = subprocess.run(
        [*integrity_cli(), "audit", "drain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert again.returncode == 0 and "0 replayed" in again.stdout, again.stderr


@pytest.mark.parametrize(
    "poison",
    [b'{"event": {"event_type": "claim.\xe2\x82', b"[" * 100_000],
    ids=["torn inside a character", "nested beyond reading"],
)
def test_an_unreadable_line_is_set_aside_and_never_stops_recording(
    store: IntegrityStore, store_url: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch, poison: bytes
) -> None:
    spool = AuditSpool(spool_dir)
    now = datetime.now(UTC)
    spool.put(AuditEvent("claim.step", actor="w", business_key="before").identified(), occurred_at=now, reason="x")
    with open(spool.path, "ab") as handle:
        handle.write(poison)  # no newline: the next line must not be glued to it
    spool.put(AuditEvent("claim.step", actor="w", business_key="after").identified(), occurred_at=now, reason="x")
    assert spool.pending() == 3

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    assert audit.record("claim.step", business_key="now") is not None  # recording goes on, the spool drains
    assert spool.pending() == 0
    assert [e.business_key for e in _events(store_url)] == ["before", "after", "now"]
    (refused,) = [json.loads(line) for line in spool.refused_path.read_text().splitlines()]
    assert "not a spooled audit event" in refused["reason"]


def test_an_event_the_database_cannot_hold_is_refused_before_it_is_spooled(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    event = AuditEvent("claim.step", actor="w", map_index=2**31)
    with pytest.raises(AuditEventError, match=r"'map_index' is 2147483648; it must fit in a 32-bit integer"):
        IntegrityCheckHook().record_event(event)
    assert AuditSpool(spool_dir).pending() == 0


def test_verify_of_a_store_that_does_not_exist_creates_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    import argparse

    from airflow_integrity.cli import audit_command

    missing = tmp_path / "nowhere" / "integrity.db"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{missing}")
    with pytest.raises(SystemExit) as exited:
        audit_command.verify(argparse.Namespace(conn_id=None, key_conn_id=None, from_checkpoint=False))
    assert exited.value.code == 1 and "no integrity store at" in capsys.readouterr().err
    assert not missing.parent.exists()
