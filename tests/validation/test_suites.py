"""Suites load from every source GX users have; bad suites fail naming the suite, the expectation and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import great_expectations as gx
import pytest

from airflow_integrity.validation import SuiteError, check_suite_reference, load_suite

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
GX_SUITE_FILE = DATA / "patients_suite.json"


def _gx_written_project(tmp_path: Path) -> Path:
    """A GX file context whose suites GX itself wrote."""
    context = gx.get_context(mode="file", project_root_dir=str(tmp_path))
    suite = gx.ExpectationSuite(name="intake.v2.patients")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="patient_id"))
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeBetween(column="age", min_value=0, max_value=120, severity="warning")
    )
    context.suites.add(suite)
    flat = gx.ExpectationSuite(name="claims")
    flat.add_expectation(gx.expectations.ExpectTableRowCountToBeBetween(min_value=1))
    context.suites.add(flat)
    return tmp_path


@pytest.fixture(scope="module")
def gx_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _gx_written_project(tmp_path_factory.mktemp("gx-project"))


def _types(loaded) -> list[str]:  # type: ignore[no-untyped-def]
    return [info.type for info in loaded.expectations]


def test_a_suite_file_as_gx_writes_it_loads_with_names_severities_and_ids():
    loaded = load_suite(GX_SUITE_FILE)
    raw = json.loads(GX_SUITE_FILE.read_text())
    assert loaded.name == raw["name"] == "intake.patients"
    assert _types(loaded) == [e["type"] for e in raw["expectations"]]
    assert [i.severity for i in loaded.expectations] == [e["severity"] for e in raw["expectations"]]
    assert [i.id for i in loaded.expectations] == [e["id"] for e in raw["expectations"]]
    assert loaded.source == f"file:{GX_SUITE_FILE}"
    assert loaded.fingerprint.startswith("sha256:") and len(loaded.fingerprint) == 71
    assert [e.expectation_type for e in loaded.gx_suite.expectations] == _types(loaded)


def test_suites_by_name_from_a_gx_file_context_including_dotted_names(gx_project: Path):
    nested = load_suite("intake.v2.patients", context_dir=gx_project)
    assert nested.name == "intake.v2.patients"
    assert [(i.type, i.severity) for i in nested.expectations] == [
        ("expect_column_values_to_not_be_null", "critical"),
        ("expect_column_values_to_be_between", "warning"),
    ]
    # The gx/ folder itself is accepted as the context directory too.
    assert load_suite("claims", context_dir=gx_project / "gx").name == "claims"
    assert check_suite_reference("claims", context_dir=gx_project) == "claims"


def test_an_unknown_suite_name_lists_the_closest_suites_of_the_context(gx_project: Path):
    with pytest.raises(SuiteError) as error:
        load_suite("claim", context_dir=gx_project)
    message = str(error.value)
    assert "'claim' is not in the GX context" in message
    assert "Did you mean 'claims'" in message
    assert "'intake.v2.patients'" in message


def test_a_suite_name_without_context_dir_explains_both_ways_out():
    with pytest.raises(SuiteError, match=r"no context directory was given.*context_dir=.*\.json"):
        check_suite_reference("patients")


def test_python_sources_gx_suite_gx_objects_and_dicts_are_equivalent():
    dicts = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "age", "min_value": 0},
            "severity": "warning",
        },
    ]
    objects = [
        gx.expectations.ExpectColumnValuesToNotBeNull(column="id"),
        gx.expectations.ExpectColumnValuesToBeBetween(column="age", min_value=0, severity="warning"),
    ]
    suite = gx.ExpectationSuite(name="same", expectations=[dict(d) for d in dicts])
    from_dicts = load_suite(dicts, name="same")
    from_objects = load_suite(objects, name="same")
    from_suite = load_suite(suite)
    from_document = load_suite({"name": "same", "expectations": dicts})
    assert (
        from_dicts.fingerprint == from_objects.fingerprint == from_suite.fingerprint == from_document.fingerprint
    )
    assert [i.severity for i in from_suite.expectations] == ["critical", "warning"]
    # The caller's objects are not modified (GX would otherwise bind them to our suite).
    assert all(o.id is None for o in objects)


def test_the_fingerprint_changes_with_arguments_and_severity_and_an_unnamed_suite_is_named_by_it():
    base = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    warning = [{**base[0], "severity": "warning"}]
    other = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}}]
    fingerprints = {load_suite(s).fingerprint for s in (base, warning, other)}
    assert len(fingerprints) == 3
    assert load_suite(base).name == load_suite(base).name != load_suite(other).name
    assert load_suite(base).name.startswith("inline-")


def test_domain_columns_and_row_level_are_known_per_expectation():
    loaded = load_suite(
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_pair_values_to_be_equal", "kwargs": {"column_A": "a", "column_B": "b"}},
            {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "b"]}},
            {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "min_value": 1}},
            {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["a", "b"]}},
            {"type": "expect_column_to_exist", "kwargs": {"column": "c"}},
        ]
    )
    assert [(i.columns, i.row_level) for i in loaded.expectations] == [
        (("a",), True),
        (("a", "b"), True),
        (("a", "b"), True),
        (("a",), False),
        ((), False),
        ((), False),  # checking that a column exists must not require it
    ]


# Bad suites ---------------------------------------------------------------------------------------------------


def test_malformed_json_names_the_file_line_and_column():
    for check in (check_suite_reference, load_suite):
        with pytest.raises(SuiteError) as error:
            check(DATA / "malformed_suite.json")
        message = str(error.value)
        assert "malformed_suite.json" in message and "is not valid JSON" in message
        assert "line 5" in message


def test_a_missing_file_is_named():
    with pytest.raises(SuiteError, match=r"Suite file '.*nope\.json' does not exist"):
        check_suite_reference("suites/nope.json")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([1, 2], "holds a JSON list, not a suite object"),
        ({"name": "x"}, "no 'expectations' key"),
        ({"name": "x", "expectations": {"a": 1}}, "'expectations' is a dict"),
        ({"name": "x", "expectations": [{"kwargs": {}}]}, "expectation #0: has no 'type'"),
        (
            {"name": "x", "expectations": [{"type": "t", "kwarg": {}}]},
            "expectation #0 (t): unknown key(s) 'kwarg'",
        ),
        ({"name": "x", "expectations": [{"type": "t", "kwargs": []}]}, "'kwargs' must be an object"),
        ({"name": "x", "expectations": [{"type": "t", "severity": "fatal"}]}, "severity 'fatal' is not one of"),
    ],
)
def test_the_cheap_check_catches_shape_errors_naming_the_expectation(tmp_path: Path, document, expected):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SuiteError) as error:
        check_suite_reference(path)
    assert expected in str(error.value)
    assert "suite.json" in str(error.value)


def test_an_unknown_expectation_type_lists_the_closest_known_ones():
    # The parse-time check only looks at the shape; the full load knows GX's registry.
    assert check_suite_reference(DATA / "unknown_expectation_suite.json") == "typo"
    with pytest.raises(SuiteError) as error:
        load_suite(DATA / "unknown_expectation_suite.json")
    message = str(error.value)
    assert "unknown_expectation_suite.json" in message
    assert "expectation #1 (expect_column_values_to_be_betwen)" in message
    assert "Closest known expectations: expect_column_values_to_be_between" in message


def test_a_wrong_argument_type_names_the_argument_value_and_expected_type():
    with pytest.raises(SuiteError) as error:
        load_suite(DATA / "wrong_argument_type_suite.json")
    message = str(error.value)
    assert "expectation #0 (expect_column_values_to_be_in_set)" in message
    assert "argument 'value_set'='public': value is not a valid list" in message
    assert "valid dict" not in message  # GX's $PARAMETER alternative is noise here


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "missing required argument 'column'"),
        ({"colum": "a"}, "unknown argument 'colum' (did you mean 'column'?)"),
        ({"column": 5}, "argument 'column'=5: str type expected"),
        ({"column": "a", "mostly": "most"}, "argument 'mostly'='most': value is not a valid float"),
    ],
)
def test_bad_arguments_in_python_suites_name_the_problem_and_the_accepted_arguments(kwargs, expected):
    suite = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ok"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": kwargs},
    ]
    with pytest.raises(SuiteError) as error:
        load_suite(suite, name="intake")
    message = str(error.value)
    assert message.startswith("suite 'intake', expectation #1 (expect_column_values_to_not_be_null): ")
    assert expected in message
    assert "Accepted arguments: column, mostly" in message


def test_a_non_expectation_in_a_list_is_refused():
    with pytest.raises(
        SuiteError, match=r"expectation #1: a str is neither a GX expectation nor an expectation dict"
    ):
        check_suite_reference([{"type": "expect_column_to_exist", "kwargs": {"column": "a"}}, "oops"])
    with pytest.raises(SuiteError, match="A suite reference cannot be of type int"):
        load_suite(42)


def test_a_copied_gx_project_keeps_working(gx_project: Path, tmp_path: Path):
    # Suites are plain files: a project checked into a DAG repository loads the same from anywhere.
    copy = tmp_path / "repo"
    shutil.copytree(gx_project, copy)
    original = load_suite("intake.v2.patients", context_dir=gx_project)
    assert load_suite("intake.v2.patients", context_dir=copy).fingerprint == original.fingerprint
