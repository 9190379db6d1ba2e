"""Great Expectations integration: suites, data adapters, validation runs, summaries and quarantine splits.

The only package of airflow-integrity that imports Great Expectations, always inside functions: importing this
package costs neither GX nor pandas, so DAG files that use it parse fast. It knows nothing of the integrity
store or of Airflow operators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_integrity.lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_integrity.validation.data import frame_from_path, frame_from_value
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
    from airflow_integrity.validation.http_body import records_from_json_body
    from airflow_integrity.validation.quarantine import QuarantineSplit, split_rows
    from airflow_integrity.validation.run import ValidationOutcome, validate
    from airflow_integrity.validation.sql import SqlSource
    from airflow_integrity.validation.suite_refs import check_suite_reference
    from airflow_integrity.validation.suites import ExpectationInfo, LoadedSuite, load_suite

# Where each public name lives: importing the package loads none of its modules (a DAG file that imports only
# ``validation.errors`` or ``validation.suite_refs`` pays for those alone); a name's module loads on first use.
_MODULES = {
    "DataError": "errors",
    "EmptyDataError": "errors",
    "IntegrityValidationError": "errors",
    "MissingColumnError": "errors",
    "SourceUnavailableError": "errors",
    "SuiteError": "errors",
    "UnsupportedFormatError": "errors",
    "ExpectationInfo": "suites",
    "LoadedSuite": "suites",
    "load_suite": "suites",
    "QuarantineSplit": "quarantine",
    "split_rows": "quarantine",
    "SqlSource": "sql",
    "ValidationOutcome": "run",
    "validate": "run",
    "check_suite_reference": "suite_refs",
    "frame_fingerprint": "fingerprint",
    "frame_from_path": "data",
    "frame_from_value": "data",
    "records_from_json_body": "http_body",
}

__getattr__, __dir__ = lazy_exports(globals(), _MODULES)


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
