"""The failure policies of a validation (``on_failure``) and their parse-time check.

Kept apart from :mod:`airflow_integrity.hooks.validation` so that an operator's ``__init__`` can check its
arguments when a DAG file is parsed without loading what running a validation needs.
"""

from __future__ import annotations

from typing import Any, Literal

OnFailure = Literal["fail", "warn", "quarantine"]
ON_FAILURE = ("fail", "warn", "quarantine")


def check_policy(on_failure: str, *, quarantine_path: Any, max_unexpected_fraction: float) -> None:
    """Check policy arguments cheaply (usable in an operator's ``__init__``).

    Raises:
        ValueError: An unknown policy, quarantine without a location, or a fraction outside [0, 1].
    """
    if on_failure not in ON_FAILURE:
        raise ValueError(f"on_failure={on_failure!r} is not one of {', '.join(ON_FAILURE)}.")
    if on_failure == "quarantine" and not quarantine_path:
        raise ValueError(
            "on_failure='quarantine' needs a folder for the rejected rows: quarantine_path= (a local or "
            "object-storage folder set in DAG code) or [integrity] quarantine_dir."
        )
    if not 0.0 <= float(max_unexpected_fraction) <= 1.0:
        raise ValueError(f"max_unexpected_fraction={max_unexpected_fraction!r} must be between 0 and 1.")
