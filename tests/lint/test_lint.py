"""``airflow integrity lint``: what it reports on DAGs with coverage gaps, the examples, and Airflow's own DAGs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import airflow
import pytest

from airflow_integrity.lint import lint_paths
from tests.airflow_versions import integrity_cli

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
REPO = HERE.parents[1]
INTEGRITY = integrity_cli()


def _line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of ``path`` that contains ``text``."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def _lint_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env["AIRFLOW_HOME"] = str(home)
    return subprocess.run(
        [*INTEGRITY, "lint", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=240
    )


@pytest.mark.requirement("part11.11.50")
def test_each_gap_is_reported_with_its_file_and_line_and_guarded_twins_are_not() -> None:
    gaps = HERE / "dags" / "coverage_gaps.py"
    compensated = HERE / "dags" / "compensated_gaps.py"
    report = lint_paths([HERE / "dags"], relative_to=REPO)

    found = {(f.file, f.line, f.dag_id, f.task_id, f.kind) for f in report.findings}
    gaps_file, compensated_file = "tests/lint/dags/coverage_gaps.py", "tests/lint/dags/compensated_gaps.py"
    assert found == {
        (gaps_file, _line_of(gaps, "def transform") - 1, "coverage_gaps", "transform", "unvalidated-handoff"),
        (gaps_file, _line_of(gaps, '"notify_partner"'), "coverage_gaps", "notify_partner", "unguarded-effect"),
        (gaps_file, _line_of(gaps, '"insert_rows"'), "coverage_gaps", "insert_rows", "unguarded-effect"),
        (gaps_file, _line_of(gaps, '"start_downstream"'), "coverage_gaps", "start_downstream", "unguarded-effect"),
        (gaps_file, _line_of(gaps, '"ask_anything"'), "coverage_gaps", "ask_anything", "approval-without-meaning"),
        (
            gaps_file,
            _line_of(gaps, "def consume_approval") - 1,
            "coverage_gaps",
            "consume_approval",
            "unvalidated-handoff",
        ),
        # A waiver without a reason waives nothing.
        (gaps_file, _line_of(gaps, '"ping_partner"'), "coverage_gaps", "ping_partner", "unguarded-effect"),
        (compensated_file, _line_of(compensated, '"ship"'), "compensated_gaps", "ship", "uncompensated-effect"),
    }
    # @task findings point at the function's decorator line, the line above its def.
    assert all(f.line > 1 for f in report.findings)
    (ping,) = [f for f in report.findings if f.task_id == "ping_partner"]
    assert "gives no reason, so it waives nothing" in ping.message
    (notify,) = [f for f in report.findings if f.task_id == "notify_partner"]
    assert "HTTP POST request" in notify.message and "IdempotentHttpOperator(key=...)" in notify.message
    (waived, reason) = report.waived[0]
    assert len(report.waived) == 1 and waived.task_id == "act_on_review"
    assert reason == "the answer is a person's signed choice, already recorded in the trail"
    assert report.dags == {"coverage_gaps": gaps_file, "compensated_gaps": compensated_file}


def test_the_cli_prints_findings_for_people_and_json_for_ci_and_fails_on_the_kinds_asked(tmp_path: Path) -> None:
    text = _lint_cli("tests/lint/dags", home=tmp_path)
    assert text.returncode == 1, text.stderr
    gaps_line = _line_of(HERE / "dags" / "coverage_gaps.py", '"notify_partner"')
    assert (
        f"tests/lint/dags/coverage_gaps.py:{gaps_line}: coverage_gaps.notify_partner: unguarded-effect:"
        in text.stdout
    )
    assert text.stdout.strip().splitlines()[-1] == (
        "2 DAGs: 2 unvalidated-handoff, 4 unguarded-effect, 1 uncompensated-effect, 1 approval-without-meaning; "
        "1 waived."
    )

    as_json = _lint_cli("tests/lint/dags", "--json", "--fail-on", "uncompensated-effect", home=tmp_path)
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)  # nothing but the report on standard output
    assert report["failing"] == 1 and report["counts"]["unguarded-effect"] == 4
    assert report["waived"][0]["task_id"] == "act_on_review"

    assert _lint_cli("tests/lint/dags", "--fail-on", "none", home=tmp_path).returncode == 0
    assert (
        _lint_cli("tests/lint/dags/compensated_gaps.py", "--fail-on", "unguarded-effect", home=tmp_path).returncode
        == 0
    )
    unknown = _lint_cli("tests/lint/dags", "--fail-on", "unguarded", home=tmp_path)
    assert unknown.returncode == 2 and "unknown kind ['unguarded']" in unknown.stderr
    missing = _lint_cli("no/such/folder", home=tmp_path)
    assert missing.returncode == 2 and "no/such/folder: no such file or folder" in missing.stderr


def test_a_dag_file_that_does_not_import_is_a_finding_not_a_crash() -> None:
    report = lint_paths([HERE / "broken"], relative_to=REPO)
    (finding,) = report.findings
    assert (finding.file, finding.kind, finding.dag_id) == (
        "tests/lint/broken/broken_dag.py",
        "import-error",
        None,
    )
    assert finding.line == _line_of(HERE / "broken" / "broken_dag.py", "raise RuntimeError")
    assert "the partner catalogue is unreachable at parse time" in finding.message


@pytest.mark.requirement("annex11.4")
def test_the_example_dags_are_clean(tmp_path: Path) -> None:
    result = _lint_cli("dags", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("6 DAGs: no findings; ")
    # Every waiver of the examples states its reason.
    report = lint_paths([REPO / "dags"], relative_to=REPO)
    assert report.findings == [] and all(reason for _, reason in report.waived)


def test_airflow_s_own_example_dags_are_read_without_a_crash_and_their_gaps_reported() -> None:
    package = Path(airflow.__file__).parent
    folders = [package / "example_dags", package / "providers" / "standard" / "example_dags"]
    report = lint_paths([folder for folder in folders if folder.is_dir()])

    assert len(report.dags) > 50
    kinds = {(f.dag_id, f.task_id): f.kind for f in report.findings}
    assert kinds[("example_trigger_controller_dag", "test_trigger_dagrun")] == "unguarded-effect"
    assert kinds[("tutorial_taskflow_api", "transform")] == "unvalidated-handoff"
    assert kinds[("example_hitl_operator", "wait_for_option")] == "approval-without-meaning"
    assert all(f.line >= 1 and f.file.endswith(".py") for f in report.findings)


def test_waivers_mapped_tasks_and_misleading_forms() -> None:
    report = lint_paths([HERE / "tricky"], relative_to=REPO)
    found = {(f.dag_id, f.task_id, f.kind): f for f in report.findings}
    # A waiver on one DAG's task does not cover the other DAG's task of the same id.
    assert [(f.dag_id, f.task_id) for f, _ in report.waived] == [("first", "send")]
    assert ("second", "send", "unguarded-effect") in found and found[
        ("second", "send", "unguarded-effect")
    ].located
    # Mapped tasks: a mapped POST is an effect; data handed to a mapped TaskFlow task is a hand-off.
    assert ("second", "post_each", "unguarded-effect") in found
    assert ("second", "use", "unvalidated-handoff") in found
    # xcom_pull with task_ids after another argument, as a tuple.
    assert ("second", "forward", "unvalidated-handoff") in found
    # SQL that only looks like a read.
    assert ("second", "purge_via_cte", "unguarded-effect") in found
    assert ("second", "explain_analyze", "unguarded-effect") in found
    # Ids built in a loop point at their DAG's line, flagged as not located.
    loop = found[("second", "loop_a_post", "unguarded-effect")]
    assert not loop.located and loop.line == _line_of(HERE / "tricky" / "two_dags.py", 'with DAG("second"')
