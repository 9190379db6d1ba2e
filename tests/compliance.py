"""The traceability matrix of ``docs/compliance.md`` and the tests that prove each requirement.

A test proves a requirement by its marker::

    @pytest.mark.requirement("part11.11.10e", "alcoa.complete")
    def test_...

The matrix has one table row per requirement, its id in the first cell and its evidence in the fourth: the ids of
the tests marked with it (``tests/file.py::test_name``, separated by ``<br>``), or ``No automated test: <why>``.
The evidence is generated from the markers, never typed::

    python -m tests.compliance            # rewrite the evidence cells of docs/compliance.md from the markers
    python -m tests.compliance --check    # exit 1, naming each difference, when the document is out of date

``tests/test_compliance_matrix.py`` runs the check and collects every named test with pytest.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MATRIX = REPO / "docs" / "compliance.md"
TESTS = REPO / "tests"
NO_TEST = "No automated test:"
_ROW = re.compile(r"^\|\s*`(?P<id>[a-z0-9][a-z0-9.+_-]*)`\s*\|")
_EVIDENCE_CELL = 3  # requirement | what it asks | how the product meets it | evidence | your procedure
_CELLS = 5


@dataclass(frozen=True)
class Row:
    """One requirement row of the matrix."""

    requirement: str
    line: int  # 1-based line in the document
    cells: tuple[str, ...]

    @property
    def evidence(self) -> str:
        return self.cells[_EVIDENCE_CELL] if len(self.cells) > _EVIDENCE_CELL else ""

    def named_tests(self) -> list[str]:
        return re.findall(r"`(tests/[^`]+::[^`]+)`", self.evidence)


def _cells(line: str) -> tuple[str, ...]:
    """The cells of a table row (no cell of the matrix holds a ``|``)."""
    return tuple(cell.strip() for cell in line.strip()[1:-1].split("|"))


def matrix_rows(text: str) -> list[Row]:
    """The requirement rows of the document, in order."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _ROW.match(line)
        if match:
            rows.append(Row(match["id"], number, _cells(line)))
    return rows


def _requirements_of(decorator: ast.expr) -> list[str]:
    """The ids of a ``pytest.mark.requirement(...)`` expression (empty for any other)."""
    if not isinstance(decorator, ast.Call):
        return []
    if ast.unparse(decorator.func) not in ("pytest.mark.requirement", "mark.requirement"):
        return []
    return [arg.value for arg in decorator.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]


def _module_requirements(tree: ast.Module) -> list[str]:
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            for value in values:
                found.extend(_requirements_of(value))
    return found


def marked_tests(root: Path = TESTS) -> dict[str, set[str]]:
    """Requirement id -> the ids of the tests marked with it (read from the source, as pytest would collect)."""
    marked: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = _module_requirements(tree)
        relative = path.relative_to(REPO).as_posix()
        for node in tree.body:
            functions: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, list[ast.expr]]] = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.name, node, []))
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        functions.append((f"{node.name}::{item.name}", item, node.decorator_list))
            for name, function, outer in functions:
                if not function.name.startswith("test"):
                    continue
                ids = list(module)
                for decorator in [*outer, *function.decorator_list]:
                    ids.extend(_requirements_of(decorator))
                for requirement in ids:
                    marked[requirement].add(f"{relative}::{name}")
    return dict(marked)


def evidence_cell(tests: set[str]) -> str:
    return "<br>".join(f"`{test}`" for test in sorted(tests))


def regenerate(text: str, marked: dict[str, set[str]]) -> str:
    """The document with each row's evidence cell made from the markers (a row without tests keeps its why)."""
    lines = text.splitlines(keepends=True)
    for row in matrix_rows(text):
        tests = marked.get(row.requirement)
        if not tests:
            continue
        cells = list(row.cells)
        while len(cells) < _CELLS:
            cells.append("")
        cells[_EVIDENCE_CELL] = evidence_cell(tests)
        ending = "\n" if lines[row.line - 1].endswith("\n") else ""
        lines[row.line - 1] = "| " + " | ".join(cells) + " |" + ending
    return "".join(lines)


def problems(text: str, marked: dict[str, set[str]]) -> list[str]:
    """What keeps the matrix from being the truth about the markers, each naming the requirement and the fix."""
    rows = matrix_rows(text)
    found: list[str] = []
    seen: set[str] = set()
    for row in rows:
        if row.requirement in seen:
            found.append(f"line {row.line}: {row.requirement} has a second row; keep one")
        if len(row.cells) != _CELLS or not all(row.cells[:3]) or not row.cells[-1]:
            found.append(
                f"line {row.line}: {row.requirement} needs its five cells filled in: requirement, what it asks, "
                f"how the product meets it, evidence, your procedure (found {len(row.cells)}, empty ones included)"
            )
        seen.add(row.requirement)
        tests = marked.get(row.requirement, set())
        named = set(row.named_tests())
        if tests and named != tests:
            missing, extra = sorted(tests - named), sorted(named - tests)
            found.append(
                f"line {row.line}: {row.requirement} evidence is out of date (marked but not named: {missing}; "
                f"named but no longer marked or gone: {extra}); run python -m tests.compliance"
            )
        if not tests:
            if named:
                found.append(
                    f"line {row.line}: {row.requirement} names {sorted(named)} but no test is marked with it "
                    "any more: the requirement lost its evidence"
                )
            elif not row.evidence.startswith(NO_TEST) or not row.evidence[len(NO_TEST) :].strip():
                found.append(
                    f"line {row.line}: {row.requirement} has no test marked with it and does not say why none "
                    f"can exist ('{NO_TEST} <why>')"
                )
    for requirement in sorted(set(marked) - seen):
        tests = sorted(marked[requirement])
        found.append(f"tests are marked with {requirement!r}, which the matrix has no row for: {tests}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 naming each difference")
    args = parser.parse_args()
    text = MATRIX.read_text(encoding="utf-8")
    marked = marked_tests()
    if args.check:
        found = problems(text, marked)
        for problem in found:
            print(problem, file=sys.stderr)
        sys.exit(1 if found else 0)
    MATRIX.write_text(regenerate(text, marked), encoding="utf-8")
    remaining = problems(MATRIX.read_text(encoding="utf-8"), marked)
    for problem in remaining:
        print(problem, file=sys.stderr)
    sys.exit(1 if remaining else 0)


if __name__ == "__main__":
    main()
