"""Importing the validation package, and the parse-time suite check, cost neither Great Expectations nor pandas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
HEAVY = ("great_expectations", "pandas", "numpy", "sqlalchemy")


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_no_heavy_module():
    assert _loaded_after("import airflow_integrity.validation") == []


def test_every_public_name_is_importable_without_heavy_modules():
    code = "from airflow_integrity.validation import *\nfrom airflow_integrity.validation import __all__ as names"
    assert _loaded_after(code) == []


def test_parse_time_suite_check_of_a_gx_suite_file_loads_no_heavy_module():
    code = (
        "from airflow_integrity.validation import check_suite_reference\n"
        f"assert check_suite_reference({str(DATA / 'patients_suite.json')!r}) == 'intake.patients'\n"
        "check_suite_reference([{'type': 'expect_column_values_to_not_be_null', 'kwargs': {'column': 'a'}}])"
    )
    assert _loaded_after(code) == []
