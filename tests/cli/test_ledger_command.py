"""``airflow integrity ledger show`` and ``release``, called in-process on each backend."""

from __future__ import annotations

import argparse
import getpass
import json

import pytest

from airflow_integrity.cli import ledger_command
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.airflow_versions import integrity_cli
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration

INPUTS = inputs_digest({"claim_id": 42})
HOLDER = {"dag_id": "claims", "run_id": "manual__1", "task_id": "pay", "try_number": 2}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow integrity ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ledger_command.LEDGER_COMMANDS:
        sub = commands.add_parser(command.name, help=command.help)
        for arg in command.args:
            arg.add_to_parser(sub)
        sub.set_defaults(func=command.func)
    return parser


@pytest.fixture
def ledger(store_conn_env: str) -> IdempotencyLedger:
    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    store.migrate()
    with IdempotencyLedger(store, namespace="payments") as ledger:
        yield ledger


def _completed(ledger: IdempotencyLedger, key: str = "claim-42") -> None:
    claim = ledger.claim(key, fingerprint=INPUTS, holder=HOLDER)
    assert claim.lease is not None
    ledger.complete(claim.lease, {"payment_id": "PAY-9"})


def test_show_prints_the_entry_and_its_full_history(ledger: IdempotencyLedger, capsys) -> None:  # type: ignore[no-untyped-def]
    _completed(ledger)
    ledger.claim("claim-42", fingerprint=INPUTS)
    ledger.release("claim-42", reason="paid to the wrong account", person="a.auditor")
    args = _parser().parse_args(["show", "claim-42", "--namespace", "payments"])
    args.func(args)
    out = capsys.readouterr().out
    assert "Idempotency key 'claim-42' (namespace 'payments')" in out
    assert "state:" in out and "released" in out
    assert INPUTS in out
    assert "run_id=manual__1" in out and "try_number=2" in out
    history = out.split("History (4 events):")[1].strip().splitlines()
    assert [line.split()[2] for line in history] == ["claimed", "completed", "replayed", "released"]
    assert "by a.auditor: paid to the wrong account" in history[3]
    assert "PAY-9" not in out  # the result only on request

    args = _parser().parse_args(["show", "claim-42", "--namespace", "payments", "--json", "--result"])
    args.func(args)
    document = json.loads(capsys.readouterr().out)
    assert document["entry"]["state"] == "released"
    assert document["entry"]["last_person"] == "a.auditor"
    assert [item["event"] for item in document["history"]] == ["claimed", "completed", "replayed", "released"]
    # Released, the key keeps showing its last result until the next claim runs the work again.
    assert document["result"] == {"payment_id": "PAY-9"}


def test_show_can_print_the_stored_result(ledger: IdempotencyLedger, capsys) -> None:  # type: ignore[no-untyped-def]
    _completed(ledger)
    ledger_command.show(argparse.Namespace(key="claim-42", namespace="payments", json=False, result=True))
    out = capsys.readouterr().out
    assert '"payment_id": "PAY-9"' in out
    assert "inline" in out


@pytest.mark.requirement("annex11.9")
def test_release_records_the_person_and_reason_and_reopens_the_key(
    ledger: IdempotencyLedger, store_conn_env: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    _completed(ledger)
    args = _parser().parse_args(
        [
            "release",
            "claim-42",
            "--namespace",
            "payments",
            "--reason",
            "refund issued, pay again",
            "--user",
            "j.doe",
        ]
    )
    args.func(args)
    out = capsys.readouterr().out
    assert "Released idempotency key 'claim-42'" in out and "j.doe" in out and "refund issued" in out

    again = ledger.claim("claim-42", fingerprint=INPUTS)
    assert again.status is ClaimStatus.CLAIMED
    assert again.lease is not None and again.lease.fencing_token == 2
    released = [h for h in ledger.history("claim-42") if h.event == "released"]
    assert [(h.person, h.reason) for h in released] == [("j.doe", "refund issued, pay again")]
    # The release is on the audit trail too, attributed to the person, with the reason.
    (event,) = [e for e in idempotency_events(store_conn_env, "claim-42") if e["event"] == "released"]
    assert event["actor"] == "j.doe"
    assert event["details"]["reason"] == "refund issued, pay again"
    assert event["details"]["previous_state"] == "completed" and event["details"]["namespace"] == "payments"


def test_show_is_audited_with_the_person_and_the_reason(
    ledger: IdempotencyLedger, store_conn_env: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    _completed(ledger)
    args = _parser().parse_args(
        ["show", "claim-42", "--namespace", "payments", "--result", "--user", "qa.lead", "--reason", "CAPA-17"]
    )
    args.func(args)
    assert "PAY-9" in capsys.readouterr().out
    (event,) = [e for e in idempotency_events(store_conn_env, "claim-42") if e["event"] == "inspected"]
    assert event["actor"] == "qa.lead"
    assert event["details"]["reason"] == "CAPA-17"
    assert event["details"]["with_result"] is True and event["details"]["state"] == "completed"
    # What was shown stays out of the trail: only facts about the key.
    assert "PAY-9" not in json.dumps(event["details"])


@pytest.mark.requirement("alcoa.attributable")
def test_release_without_user_records_the_os_login(ledger: IdempotencyLedger) -> None:
    _completed(ledger)
    ledger_command.release(
        argparse.Namespace(key="claim-42", namespace="payments", reason="duplicate check", user=None, conn_id=None)
    )
    entry = ledger.get("claim-42")
    assert entry is not None and entry.last_person == getpass.getuser()


def test_refusals_exit_1_with_the_reason_and_no_traceback(ledger: IdempotencyLedger, capsys) -> None:  # type: ignore[no-untyped-def]
    ledger.claim("claim-42", fingerprint=INPUTS, holder=HOLDER)
    with pytest.raises(SystemExit) as exit_:
        ledger_command.release(
            argparse.Namespace(key="claim-42", namespace="payments", reason="r", user="x", conn_id=None)
        )
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "run_id=manual__1" in err and "Traceback" not in err

    with pytest.raises(SystemExit) as exit_:
        ledger_command.show(argparse.Namespace(key="claim-404", namespace="payments", json=False, result=False))
    assert exit_.value.code == 1
    assert "No idempotency key 'claim-404' in namespace 'payments'" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        ledger_command.release(argparse.Namespace(key="", namespace="payments", reason="r", user="x"))
    assert "is empty" in capsys.readouterr().err


@pytest.mark.requirement("part11.11.10g")
@pytest.mark.unit
def test_release_requires_a_reason(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        _parser().parse_args(["release", "claim-42"])
    assert "the following arguments are required: --reason" in capsys.readouterr().err


def test_real_airflow_cli_shows_and_releases_a_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess

    url = f"sqlite:///{tmp_path / 'integrity.db'}"
    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    with IdempotencyLedger(store, namespace="payments") as ledger:
        _completed(ledger, "claim-7")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONN_INTEGRITY_DEFAULT": url})
    base = [*integrity_cli(), "ledger"]
    release = subprocess.run(
        [*base, "release", "claim-7", "--namespace", "payments", "--reason", "refund reversed", "--user", "qa"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert release.returncode == 0, release.stderr
    show = subprocess.run(
        [*base, "show", "claim-7", "--namespace", "payments"], env=env, capture_output=True, text=True, timeout=180
    )
    assert show.returncode == 0, show.stderr
    assert "released" in show.stdout and "by qa: refund reversed" in show.stdout
