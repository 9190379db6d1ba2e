"""The business work both claims-batch DAGs do: line items, their assessment and the payment record."""

from __future__ import annotations

from typing import Any

CLAIMS = [f"{n:03d}" for n in range(1, 11)]

LINE_ITEMS_SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "code"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "line"}},
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "amount", "min_value": 0, "max_value": 10000},
    },
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "status", "value_set": ["billed", "adjusted"]},
    },
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
]


def line_items(claim: str) -> list[dict[str, Any]]:
    """Twenty billed lines of one claim."""
    seed = int(claim)
    return [
        {
            "line": n,
            "code": f"CPT-{99200 + (seed * 7 + n) % 50}",
            "amount": round(40 + (seed * n) % 900 * 1.5, 2),
            "status": "billed" if n % 5 else "adjusted",
        }
        for n in range(1, 21)
    ]


def assess_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The payable amount of a claim's lines (adjusted lines pay 80 %)."""
    total = sum(item["amount"] * (0.8 if item["status"] == "adjusted" else 1.0) for item in items)
    return {"lines": len(items), "payable": round(total, 2)}


def payment_for(claim: str, assessment: dict[str, Any]) -> dict[str, Any]:
    """The payment a claim's assessment leads to."""
    return {"claim": claim, "amount": assessment["payable"], "reference": f"PAY-{claim}-{assessment['lines']}"}
