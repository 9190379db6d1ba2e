"""The Integrity console in a real browser, as a reviewer uses it, on a real cluster.

The cluster runs the example DAGs: ``claims_payment`` twice for claim 42 (the second run replays the stored
payment: one payment at the service), ``claim_review`` for claim 42 with the approval given over REST (an
electronic signature), and ``patient_intake`` (validations that fail and quarantine records). Then headless
Chromium logs in to the Airflow UI and opens Integrity: filters the trail by the business key, opens the
claim's story and downloads it (the bytes the CLI export writes), opens an event and checks its hash, verifies
the chain, opens a failed validation, releases the payment key with a reason, and opens the DAG-run and
task-instance tabs. What the store holds afterwards is checked, not what the page says alone.

Screenshots of each view are written to ``INTEGRITY_SCREENSHOTS`` (the README's images under ``docs/console``
come from there), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.export import iter_records
from tests.demo_services import demo_services
from tests.e2e.approvals import answer_approval
from tests.e2e.browser import browser_page
from tests.e2e.conftest import ClusterFactory, E2EPostgres
from tests.e2e.harness import AirflowCluster, poll_until
from tests.http_payments import payments_service

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("claims_payment.py", "claim_review.py", "patient_intake.py")
SIGNING_SECRET = "e2e-console-signing-secret-0123456789"
KEY = "claim-42"


def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    for name in EXAMPLES:
        shutil.copy(REPO / "dags" / name, folder)
    return folder


def cluster_env(store_uri: str, payments_url: str, demo: dict[str, str]) -> dict[str, str]:
    return {
        **demo,  # patient_intake's payer and clearinghouse
        "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri,
        "AIRFLOW_CONN_PAYMENTS_API": payments_url,
        "AIRFLOW_CONN_AUDIT_SIGNING_KEY": json.dumps({"conn_type": "generic", "password": SIGNING_SECRET}),
        "AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID": "audit_signing_key",
        "AIRFLOW__INTEGRITY__CHECKPOINT_INTERVAL": "0",
    }


def run_examples(cluster: AirflowCluster) -> dict[str, str]:
    """Run the example DAGs to the end; returns their run ids by name."""
    for name in EXAMPLES:
        cluster.wait_for_dag(name.removesuffix(".py"), timeout=180)
    runs = {
        "review": cluster.trigger("claim_review", conf={"claim_id": 42, "amount": 1250.0, "member_id": "M-7"}),
        "intake": cluster.trigger("patient_intake"),
        "pay": cluster.trigger("claims_payment", conf={"claim_id": "42", "amount": "1250.00"}),
    }
    answer_approval(cluster, "claim_review", runs["review"], "approve_payment", ["Approve"])
    states = {name: cluster.wait_for_run(dag, runs[name], timeout=240) for name, dag in _DAGS.items()}
    # The same claim paid again: the ledger replays the stored payment.
    runs["replay"] = cluster.trigger("claims_payment", conf={"claim_id": "42", "amount": "1250.00"})
    states["replay"] = cluster.wait_for_run("claims_payment", runs["replay"], timeout=240)
    assert set(states.values()) == {"success"}, f"{states}\n{cluster.logs_tail()}"
    return runs


_DAGS = {"review": "claim_review", "intake": "patient_intake", "pay": "claims_payment"}


class Reviewer:
    """The browser, and where its screenshots go."""

    def __init__(self, page: Any, cluster: AirflowCluster, shots: Path) -> None:
        self.page = page
        self.cluster = cluster
        self.shots = shots
        # An exception the page did not handle (a crashed view) fails the test, even if no check saw it.
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def go(self, path: str) -> None:
        self.page.goto(f"{self.cluster.base_url}{path}")

    def shot(self, name: str) -> None:
        self.page.wait_for_timeout(300)  # let the last rows paint
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=False)

    def log_in(self) -> None:
        self.go("/")
        self.page.get_by_label(re.compile("username", re.I)).fill(self.cluster.username)
        self.page.get_by_label(re.compile("password", re.I)).fill(self.cluster.password)
        self.page.get_by_role("button", name=re.compile("sign in|log ?in", re.I)).click()
        self.page.wait_for_url(re.compile(r"^(?!.*login).*$"), timeout=30_000)

    def console(self, query: str | None = None) -> Any:
        """The console: from Airflow's Browse menu, or at an address (``query``) as a shared link opens it."""
        if query is None:
            self.go("/")
            self.page.get_by_role("button", name="Browse").click()
            self.page.get_by_role("menuitem", name="Integrity").click()
        else:
            self.go(f"/plugin/integrity{query}")
        console = self.page.locator("[data-integrity-console]")
        console.wait_for(timeout=60_000)
        return console


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("INTEGRITY_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.requirement("alcoa.legible", "annex11.9")
def test_a_reviewer_reads_the_trail_verifies_it_and_releases_a_key_in_the_airflow_ui(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> None:
    store_uri = e2e_pg.create_database("store")
    shots = screenshot_dir(tmp_path)
    with payments_service() as payments, demo_services() as (_, demo):
        env = cluster_env(store_uri, payments.url, demo)
        cluster = airflow_cluster_factory(dags_folder(tmp_path), env=env)
        with cluster:
            runs = run_examples(cluster)
            assert payments.stats()["payments"] == 1  # two runs for claim 42, one payment
            with browser_page(tmp_path / "chromium") as page:
                reviewer = Reviewer(page, cluster, shots)
                walk_through(reviewer, cluster, runs, tmp_path)
                assert reviewer.page_errors == []
            with browser_page(tmp_path / "chromium-dark", color_scheme="dark") as page:
                dark = Reviewer(page, cluster, shots)
                dark.log_in()
                # A shared link opens the story directly.
                dark.console(f"?view=story&key={KEY}").get_by_text("approval.signed").first.wait_for()
                assert page.evaluate("document.documentElement.classList.contains('dark')")
                dark.shot("story-dark")
                assert dark.page_errors == []
            logs = cluster.logs_tail()

    store = IntegrityStore(StoreLocation.from_url(store_uri))
    events = [record for _, record in iter_records(store) if not isinstance(record, str)]
    (released,) = [e for e in events if e.event_type == "idempotency.released"]
    assert released.actor == cluster.username, logs
    assert released.details["reason"] == "chargeback: pay again after bank correction"
    assert released.dag_id == "claims_payment"
    (verified,) = [e for e in events if e.event_type == "audit.verified"]
    assert verified.actor == cluster.username and verified.details["ok"] is True


def walk_through(reviewer: Reviewer, cluster: AirflowCluster, runs: dict[str, str], tmp_path: Path) -> None:
    page = reviewer.page
    reviewer.log_in()

    # The trail, newest first; then only claim 42.
    console = reviewer.console()
    table = console.get_by_role("table", name="Audit events")
    table.locator("tbody tr").first.wait_for()
    reviewer.shot("trail")
    console.get_by_label("business key").fill(KEY)
    console.get_by_role("button", name="Filter").click()
    poll_until(
        lambda: _column(table, "Business key") == {KEY} or None,
        timeout=30,
        describe=lambda: f"trail not filtered: {_column(table, 'Business key')}",
    )
    assert {"claim_review", "claims_payment"} <= _column(table, "DAG")

    # An event's detail: its hash matches its body and links to the one before.
    table.locator("tbody tr").first.click()
    detail = console.locator("section[aria-label^='Event']")
    detail.get_by_text("matches its body").wait_for()
    detail.get_by_text(re.compile(r"links to seq \d+")).wait_for()
    assert '"business_key":"claim-42"' in detail.locator("pre").inner_text().replace(" ", "")
    reviewer.shot("event")

    # The claim's story: the approval's signature with its meaning, the replayed payment, every run.
    table.locator("tbody tr").first.get_by_role("button", name=KEY).click()
    story = console.get_by_role("list", name=f"Story of {KEY}")
    story.get_by_text("approval.signed").wait_for(timeout=30_000)
    text = story.inner_text()
    assert f"signed by {cluster.username}: “approval”" in text, text
    for event_type in ("claim.received", "claim.payment_released", "idempotency.replayed", "dag_run.success"):
        assert event_type in text, (event_type, text)
    for run_id in runs["review"], runs["pay"], runs["replay"]:
        assert run_id in text, (run_id, text)
    story.get_by_text("approval.signed").first.scroll_into_view_if_needed()
    reviewer.shot("story")

    # Its download is what `airflow integrity audit export` writes.
    with page.expect_download() as started:
        console.get_by_role("link", name="Download CSV").click()
    downloaded = tmp_path / "story.csv"
    started.value.save_as(downloaded)
    exported = tmp_path / "cli.csv"
    result = cluster.airflow_cli(
        "integrity", "audit", "export", "--business-key", KEY, "--format", "csv", "--output", str(exported)
    )
    assert result.returncode == 0, result.stderr
    assert downloaded.read_bytes() == exported.read_bytes()

    # Verification: the chain verifies now, recorded with the reviewer's name.
    console.get_by_role("tab", name="Verification").click()
    console.get_by_role("button", name="Verify the chain now").click()
    console.get_by_text("The chain verifies.").wait_for(timeout=60_000)
    console.get_by_text(re.compile(f"by {cluster.username}")).first.wait_for()
    reviewer.shot("verification")

    # Validations: the intake's failed, quarantining validation and its failed expectations.
    console.get_by_role("tab", name="Validations").click()
    validations = console.get_by_role("table", name="Validations")
    failed = validations.locator("tbody tr", has_text="quarantined").first
    failed.wait_for()
    failed.click()
    expectations = console.get_by_role("table", name="Failed expectations")
    expectations.locator("tbody tr").first.wait_for()
    assert "expect_column_values_to" in expectations.inner_text()
    reviewer.shot("validation")

    # Ledger: the payment key, completed, with its history; released with a reason.
    console.get_by_role("tab", name="Ledger").click()
    keys = console.get_by_role("table", name="Idempotency keys")
    keys.locator("tbody tr", has_text=KEY).first.click()
    key = console.locator(f"section[aria-label='Key {KEY}']")
    key.get_by_role("table", name="Key history").get_by_text("replayed").first.wait_for()
    release = key.get_by_role("button", name="Release key")
    assert release.is_disabled()  # no reason, no release
    key.get_by_label(re.compile("Reason")).fill("chargeback: pay again after bank correction")
    release.click()
    key.get_by_role("status").filter(has_text=f"Released by {cluster.username}").wait_for(timeout=30_000)
    key.get_by_role("table", name="Key history").get_by_text("released", exact=True).wait_for()
    keys.locator("tbody tr", has_text=KEY).first.get_by_text("released", exact=True).wait_for()  # the list follows
    reviewer.shot("ledger")

    # The DAG-run tab on Airflow's own run page, reached as from the grid: the run's events, every one.
    reviewer.go(f"/dags/claim_review/runs/{runs['review']}")
    page.locator("a[href$='/plugin/integrity-run']").first.click()
    tab = page.locator("[data-integrity-console]")
    run_events = tab.get_by_role("table", name="Audit events")
    run_events.get_by_text("approval.signed").wait_for(timeout=60_000)
    assert _column(run_events, "Seq") == _seqs(cluster, dag_id="claim_review", run_id=runs["review"])
    reviewer.shot("dag-run-tab")

    # The payment run's tab: its key, released above.
    reviewer.go(f"/dags/claims_payment/runs/{runs['pay']}")
    page.locator("a[href$='/plugin/integrity-run']").first.click()
    tab.get_by_role("tab", name="Idempotency keys").click()
    run_keys = tab.get_by_role("table", name="Idempotency keys")
    run_keys.locator("tbody tr", has_text=KEY).get_by_text("released", exact=True).wait_for(timeout=30_000)
    assert _column(run_keys, "Key") == {KEY}

    # The intake run's tab: its two validations, both quarantining.
    reviewer.go(f"/dags/patient_intake/runs/{runs['intake']}")
    page.locator("a[href$='/plugin/integrity-run']").first.click()
    tab.get_by_role("tab", name="Validations").click()
    run_validations = tab.get_by_role("table", name="Validations")
    run_validations.locator("tbody tr").nth(1).wait_for(timeout=30_000)
    assert _column(run_validations, "Suite") == {"patient_registration", "insurance_coverage"}

    # The task-instance tab, from the task instance's page: that task's events, every try.
    reviewer.go(f"/dags/claim_review/runs/{runs['review']}/tasks/approve_payment")
    page.locator("a[href$='/plugin/integrity-task']").first.click()
    task_events = tab.get_by_role("table", name="Audit events")
    task_events.get_by_text("approval.signed").wait_for(timeout=60_000)
    of_task = _seqs(cluster, dag_id="claim_review", run_id=runs["review"], task_id="approve_payment")
    assert _column(task_events, "Seq") == of_task and _column(task_events, "Task") == {"approve_payment"}
    reviewer.shot("task-instance-tab")


def _seqs(cluster: AirflowCluster, **filters: str) -> set[str]:
    """The newest page of a run's or task's events as the integrity API lists them (the console's page size)."""
    page = cluster.api("GET", "/integrity/api/v1/events", params={**filters, "limit": 50})
    return {str(event["seq"]) for event in page["events"]}


def _column(table: Any, header: str) -> set[str]:
    """The distinct texts of one column of a table, as shown."""
    headers = [h.strip().rstrip("↑↓ ").strip() for h in table.locator("thead th").all_inner_texts()]
    index = headers.index(header) + 1
    return {t.strip() for t in table.locator(f"tbody tr td:nth-child({index})").all_inner_texts()}
