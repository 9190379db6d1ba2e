"""Error budgets: the acceptable error rate of a step, declared next to the DAG's code and measured from the trail.

A budget names a measure of one task (or of the whole DAG) and the highest acceptable rate over a window of
time. The figures come from the audit trail of the DAG's runs in that window, so every run, every retry and
every person's release counts, whoever recorded it:

==================  =========================================  ==============================================
measure             counts (numerator)                         out of (denominator)
==================  =========================================  ==============================================
quarantined_rows    rows quarantined (``validation.quarantined``)  rows validated by the task
failed_validations  failed validations (``validation.failed``)     validations made by the task
fallbacks           effects sent to the fallback (``fallback.used``)  effects the task completed
compensations       the task's effects undone (``compensation.completed``)  effects the task completed
releases            keys a person released (``idempotency.released``)  effects the task completed
compensated_runs    runs with an effect undone                  runs of the DAG (the budget names no task)
==================  =========================================  ==============================================
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

__all__ = [
    "MEASURES",
    "BudgetFigure",
    "ErrorBudget",
    "counters_json",
    "declared_budgets",
    "measure_budgets",
    "task_figures",
]

# measure -> (numerator, denominator) among the counters of a task (of the DAG for compensated_runs).
MEASURES = {
    "quarantined_rows": ("quarantined_rows", "rows"),
    "failed_validations": ("failed_validations", "validations"),
    "fallbacks": ("fallbacks", "effects"),
    "compensations": ("compensations", "effects"),
    "releases": ("releases", "effects"),
    "compensated_runs": ("compensated_runs", "runs"),
}
DAG_MEASURES = frozenset({"compensated_runs"})
ON_BREACH = ("fail", "warn")
_VALIDATIONS = ("validation.passed", "validation.warned", "validation.failed")


@dataclass(frozen=True)
class ErrorBudget:
    """The highest acceptable rate of one measure of a step, for example "at most 0.5 % of the claims' rows
    quarantined by ``validate_claims`` over 30 days".

    Args:
        measure: One of ``MEASURES`` (``quarantined_rows``, ``failed_validations``, ``fallbacks``,
            ``compensations``, ``releases``, ``compensated_runs``).
        max_rate: The highest acceptable rate, a fraction (``0.005`` is 0.5 %).
        task_id: The step measured (none for ``compensated_runs``, which measures the DAG's runs).
        window: How far back the measure looks.
        on_breach: ``"fail"``: the checking task fails; ``"warn"``: it logs a warning and succeeds. Both record
            ``error_budget.breached``.
        min_count: Too few to judge below this many (denominator): never a breach.
    """

    measure: str
    max_rate: float
    task_id: str | None = None
    window: timedelta = field(default=timedelta(days=30))
    on_breach: str = "fail"
    min_count: int = 1

    def __post_init__(self) -> None:
        where = f"ErrorBudget({self.measure!r}, task_id={self.task_id!r})"
        if self.measure not in MEASURES:
            raise ValueError(f"{where}: unknown measure; use one of {', '.join(MEASURES)}.")
        if (self.measure in DAG_MEASURES) != (self.task_id is None):
            need = (
                "names no task (it measures the DAG's runs)" if self.measure in DAG_MEASURES else "needs task_id="
            )
            raise ValueError(f"{where}: {self.measure} {need}.")
        if not isinstance(self.max_rate, (int, float)) or not 0 <= self.max_rate <= 1:
            raise ValueError(
                f"{where}: max_rate={self.max_rate!r} must be a fraction from 0 to 1 (0.005 is 0.5 %)."
            )
        if self.on_breach not in ON_BREACH:
            raise ValueError(f"{where}: on_breach={self.on_breach!r} must be 'fail' or 'warn'.")
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise ValueError(f"{where}: window={self.window!r} must be a positive timedelta.")

    @property
    def name(self) -> str:
        """``<task>.<measure>`` (``<measure>`` for a DAG measure)."""
        return self.measure if self.task_id is None else f"{self.task_id}.{self.measure}"

    def as_dict(self) -> dict[str, Any]:
        """The declaration as the trail and the API show it."""
        return {
            "measure": self.measure,
            "task_id": self.task_id,
            "max_rate": self.max_rate,
            "window_seconds": self.window.total_seconds(),
            "on_breach": self.on_breach,
            "min_count": self.min_count,
        }


@dataclass(frozen=True)
class BudgetFigure:
    """A budget measured: ``count`` of ``total`` in ``[since, until)``."""

    budget: ErrorBudget
    count: int
    total: int
    since: datetime
    until: datetime

    @property
    def rate(self) -> float | None:
        """``count / total``, or ``None`` when nothing was measured."""
        return None if self.total == 0 else self.count / self.total

    @property
    def breached(self) -> bool:
        """Whether the rate is above the budget (with at least ``min_count`` measured)."""
        return self.total >= max(1, self.budget.min_count) and (self.rate or 0.0) > self.budget.max_rate

    def as_dict(self) -> dict[str, Any]:
        """The figure as the trail, the API and the report show it."""
        return {
            **self.budget.as_dict(),
            "name": self.budget.name,
            "count": self.count,
            "total": self.total,
            "rate": self.rate,
            "breached": self.breached,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
        }


def task_figures(
    store: IntegrityStore, dag_id: str, since: datetime, until: datetime
) -> dict[str | None, Counter]:
    """The counters of every task of a DAG (under ``None``: of the DAG) from its trail in ``[since, until)``."""
    from airflow_integrity.store.audit.query import EventFilter, stream

    counters: dict[str | None, Counter] = {None: Counter()}
    runs: set[str] = set()
    compensated: set[str] = set()
    made_by: dict[tuple[Any, Any], str | None] = {}  # (namespace, key) -> the task that completed it
    for row in stream(store, EventFilter(dag_id=dag_id, since=since, until=until)):
        record = row.record
        if record is None:
            continue
        if record.run_id:
            runs.add(record.run_id)
        kind, details = record.event_type, record.details or {}
        counts = counters.setdefault(record.task_id, Counter())
        if kind in _VALIDATIONS:
            counts["validations"] += 1
            counts["rows"] += _whole(details.get("rows"))
            counts["failed_validations"] += kind == "validation.failed"
        elif kind == "validation.quarantined":
            counts["quarantined_rows"] += _whole(details.get("bad_rows"))
        elif kind == "idempotency.completed":
            counts["effects"] += 1
            made_by[(details.get("namespace"), details.get("key"))] = record.task_id
        elif kind == "fallback.used":
            counts["fallbacks"] += 1
        elif kind == "idempotency.released":
            # A person's release names no task: it counts for the task that completed the key.
            task = (
                record.task_id
                or details.get("task_id")
                or made_by.get((details.get("namespace"), details.get("key")))
            )
            counters.setdefault(task, Counter())["releases"] += 1
        elif kind == "compensation.completed":
            effect = details.get("effect")
            task = effect.get("task_id") if isinstance(effect, dict) else None
            counters.setdefault(task, Counter())["compensations"] += 1
            if record.run_id:
                compensated.add(record.run_id)
    counters[None].update(runs=len(runs), compensated_runs=len(compensated))
    return counters


def measure_budgets(
    store: IntegrityStore,
    dag_id: str,
    budgets: list[ErrorBudget],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[BudgetFigure]:
    """Measure each budget of ``dag_id`` over its own window ending at ``until`` (default: now), or over
    ``[since, until)`` when ``since`` is given."""
    end = until or datetime.now(UTC)
    figures = []
    by_start: dict[datetime, dict[str | None, Counter]] = {}
    for budget in budgets:
        start = since or end - budget.window
        if start not in by_start:
            by_start[start] = task_figures(store, dag_id, start, end)
        counts = by_start[start].get(budget.task_id, Counter())
        numerator, denominator = MEASURES[budget.measure]
        figures.append(BudgetFigure(budget, counts[numerator], counts[denominator], start, end))
    return figures


def counters_json(counters: dict[str | None, Counter]) -> dict[str, dict[str, int]]:
    """Counters per task as the report and the API show them: by task id, the DAG's under ``"(dag)"`` first."""
    ordered = sorted(counters.items(), key=lambda item: item[0] or "")
    return {task or "(dag)": dict(sorted(counts.items())) for task, counts in ordered}


def declared_budgets(dag: Any) -> list[ErrorBudget]:
    """The error budgets a DAG declares (on its budget-checking tasks)."""
    return [b for task in dag.tasks for b in getattr(task, "budgets", None) or () if isinstance(b, ErrorBudget)]


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
