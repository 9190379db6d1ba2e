"""OpenLineage: validation results as the ``dataQualityAssertions`` facet of the validated dataset.

Everything here is optional: when the OpenLineage provider is not installed the functions return ``None`` and
the operator reports no lineage. OpenLineage is imported only inside the functions.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

FACET_NAME = "dataQualityAssertions"


def openlineage_available() -> bool:
    """Whether the OpenLineage provider (and its client) can be imported."""
    return importlib.util.find_spec("airflow.providers.openlineage") is not None and (
        importlib.util.find_spec("openlineage.client") is not None
    )


def assertion_rows(
    summary: Mapping[str, Any], expectations: list[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One assertion per expectation: its type, column, severity and whether it held.

    Args:
        summary: A validation summary (it lists the failed expectations).
        expectations: Every expectation of the suite (``index``, ``type``, ``column``, ``severity``); without
            them only the failed ones are reported. When a bounded summary dropped failures
            (``failures_omitted``), the suite's expectations are not all known to have held, so only the
            listed failures are reported.
    """
    failed = {f["index"]: f for f in summary.get("failures", [])}
    rows: list[dict[str, Any]] = []
    if expectations is not None and not summary.get("failures_omitted"):
        for info in expectations:
            rows.append(
                {
                    "assertion": info["type"],
                    "success": info["index"] not in failed,
                    "column": info.get("column"),
                    "severity": info.get("severity"),
                }
            )
        return rows
    for failure in summary.get("failures", []):
        rows.append(
            {
                "assertion": failure["type"],
                "success": False,
                "column": failure.get("column"),
                "severity": failure.get("severity"),
            }
        )
    return rows


def dataset_identity(source: Mapping[str, Any] | None, *, fallback_name: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a validated dataset described by a serialised ``DataSource``."""
    if not source:
        return "airflow-integrity", fallback_name
    kind = source.get("kind")
    if kind == "path":
        path = str(source.get("path"))
        parts = urlsplit(path)
        if parts.scheme and parts.scheme != "file":
            return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
        return "file", parts.path if parts.scheme else path
    if kind == "sql":
        name = source.get("table") or "query"
        if source.get("schema"):
            name = f"{source['schema']}.{name}"
        return f"airflow-connection://{source.get('conn_id')}", str(name)
    return f"airflow-connection://{source.get('conn_id')}", str(source.get("endpoint"))


def assertions_facet(summary: Mapping[str, Any], expectations: list[Mapping[str, Any]] | None = None) -> Any:
    """The ``DataQualityAssertionsDatasetFacet`` of a validation summary, or ``None`` without OpenLineage."""
    if not openlineage_available():
        return None
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    return dq.DataQualityAssertionsDatasetFacet(
        assertions=[
            dq.Assertion(
                assertion=row["assertion"],
                success=row["success"],
                column=row["column"],
                severity="warn" if row["severity"] in ("warning", "info") else "error",
            )
            for row in assertion_rows(summary, expectations)
        ]
    )


def operator_lineage(
    summary: Mapping[str, Any] | None,
    namespace: str,
    name: str,
    expectations: list[Mapping[str, Any]] | None = None,
) -> Any:
    """An ``OperatorLineage`` whose input dataset carries the assertions, or ``None`` without OpenLineage."""
    if summary is None or not openlineage_available():
        return None
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset

    dataset = InputDataset(
        namespace=namespace, name=name, inputFacets={FACET_NAME: assertions_facet(summary, expectations)}
    )
    return OperatorLineage(inputs=[dataset])
