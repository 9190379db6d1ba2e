"""Errors raised by the validation layer. Each message names the offending suite, expectation or data and the fix.

These errors describe inputs that will not become valid by retrying (a malformed suite, data that is not a
table); callers in Airflow code should turn them into non-retryable task failures.
"""

from __future__ import annotations


class IntegrityValidationError(Exception):
    """Base class of every error of the validation layer."""


class SuiteError(IntegrityValidationError):
    """A suite cannot be found, parsed or built (no file, malformed JSON, unknown expectation, bad argument)."""


class MissingColumnError(SuiteError):
    """An expectation of the suite names a column the data does not have."""


class DataError(IntegrityValidationError):
    """The data handed to a validation cannot be turned into a table, or is unusable as one."""


class EmptyDataError(DataError):
    """The data has no rows, and the validation was not told that an empty hand-off is acceptable."""


class UnsupportedFormatError(DataError):
    """A file's format cannot be read here (unknown suffix, or a reader library is not installed)."""


class SourceUnavailableError(IntegrityValidationError):
    """The data's source (a database) cannot be reached; unlike the other errors, retrying may help."""
