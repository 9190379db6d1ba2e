"""Great Expectations integration: suites, data adapters, validation runs, summaries and quarantine splits.

The only package of airflow-integrity that imports Great Expectations, always inside functions: importing this
package costs neither GX nor pandas, so DAG files that use it parse fast. It knows nothing of the integrity
store or of Airflow operators.
"""

from __future__ import annotations

from airflow_integrity.validation.data import frame_from_path, frame_from_value, records_from_json_body
from airflow_integrity.validation.errors import (
    DataError,
    EmptyDataError,
    IntegrityValidationError,
    MissingColumnError,
    SourceUnavailableError,
    SuiteError,
    UnsupportedFormatError,
)
from airflow_integrity.validation.fingerprint import frame_fingerprint
from airflow_integrity.validation.quarantine import QuarantineSplit, split_rows
from airflow_integrity.validation.run import ValidationOutcome, validate
from airflow_integrity.validation.sql import SqlSource
from airflow_integrity.validation.suite_refs import check_suite_reference
from airflow_integrity.validation.suites import ExpectationInfo, LoadedSuite, load_suite

__all__ = [
    "DataError",
    "EmptyDataError",
    "ExpectationInfo",
    "IntegrityValidationError",
    "LoadedSuite",
    "MissingColumnError",
    "QuarantineSplit",
    "SourceUnavailableError",
    "SqlSource",
    "SuiteError",
    "UnsupportedFormatError",
    "ValidationOutcome",
    "check_suite_reference",
    "frame_fingerprint",
    "frame_from_path",
    "frame_from_value",
    "load_suite",
    "records_from_json_body",
    "split_rows",
    "validate",
]
