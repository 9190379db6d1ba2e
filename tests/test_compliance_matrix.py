"""``docs/compliance.md`` is the truth about the tests: each requirement names the tests marked with it (all of
them, and only tests that exist and are collected), or says why no automated test can exist."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.compliance import MATRIX, REPO, marked_tests, matrix_rows, problems

pytestmark = pytest.mark.unit

# What the matrix must cover (issue: Part 11 §11.10(a)-(k), §11.50, §11.70; Annex 11 §§4, 7, 9, 12, 14; HIPAA
# §164.312(b), (c)(1); ALCOA+).
REQUIRED = {
    *(f"part11.11.10{letter}" for letter in "abcdefghijk"),
    "part11.11.50",
    "part11.11.70",
    *(f"annex11.{section}" for section in (4, 7, 9, 12, 14)),
    "hipaa.164.312b",
    "hipaa.164.312c1",
    *(
        f"alcoa.{quality}"
        for quality in (
            "attributable",
            "legible",
            "contemporaneous",
            "original",
            "accurate",
            "complete",
            "consistent",
            "enduring",
            "available",
        )
    ),
}


@pytest.mark.requirement("annex11.4")
def test_every_requirement_names_its_evidence_and_every_named_test_is_collected() -> None:
    text = MATRIX.read_text(encoding="utf-8")
    rows = matrix_rows(text)
    assert {row.requirement for row in rows} == REQUIRED
    assert problems(text, marked_tests()) == []

    named = sorted({test for row in rows for test in row.named_tests()})
    files = sorted({test.split("::")[0] for test in named})
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    ids = {re.sub(r"\[.*\]$", "", line.strip()) for line in collected.stdout.splitlines() if "::" in line}
    assert [test for test in named if test not in ids] == []


def test_a_test_that_disappears_or_loses_its_marker_fails_the_matrix() -> None:
    text = MATRIX.read_text(encoding="utf-8")
    marked = marked_tests()
    requirement = "part11.11.10e"
    gone = sorted(marked[requirement])[0]
    without = {**marked, requirement: marked[requirement] - {gone}}
    (problem,) = problems(text, without)
    assert requirement in problem and gone in problem and "named but no longer marked or gone" in problem

    # A requirement whose every test went loses its evidence.
    emptied = {key: value for key, value in marked.items() if key != "part11.11.50"}
    (problem,) = problems(text, emptied)
    assert "part11.11.50" in problem and "lost its evidence" in problem

    # A new marker for a requirement the matrix does not list is named too.
    stray = {**marked, "part11.11.300": {"tests/x.py::test_y"}}
    (problem,) = problems(text, stray)
    assert "'part11.11.300'" in problem


def test_a_row_without_tests_must_say_why() -> None:
    text = MATRIX.read_text(encoding="utf-8")
    row = next(row for row in matrix_rows(text) if row.requirement == "part11.11.10i")
    assert row.evidence.startswith("No automated test:")
    broken = text.replace(row.evidence, "")
    (problem,) = problems(broken, marked_tests())
    assert "part11.11.10i" in problem and "does not say why" in problem


def test_a_row_needs_all_five_cells_and_a_procedure() -> None:
    text = MATRIX.read_text(encoding="utf-8")
    row = next(row for row in matrix_rows(text) if row.requirement == "alcoa.legible")
    assert len(row.cells) == 5 and row.cells[-1]
    line = text.splitlines()[row.line - 1]
    emptied = text.replace(line, line[: line.rindex(row.cells[-1])] + " |")
    (problem,) = problems(emptied, marked_tests())
    assert "alcoa.legible" in problem and "five cells" in problem
