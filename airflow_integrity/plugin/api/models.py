"""The JSON shapes of the integrity API. Field names are stable: new fields may be added, none renamed or removed.

Times are ISO-8601 in UTC. Cursors (``next_cursor``) are opaque strings: pass one back as ``cursor`` to read the
next page; ``null`` means there is no next page.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Event(BaseModel):
    """One chained audit event."""

    seq: int = Field(description="Its position in the hash chain (grows by one per event).")
    event_id: str | None = Field(description="The id the writer gave it (UUID).")
    event_type: str | None = Field(description="What happened, e.g. task.success, validation.failed.")
    recorded_at: str | None = Field(description="When the store recorded it (UTC).")
    actor: str | None = Field(description="The person, or component@host, that caused it.")
    business_key: str | None
    dag_id: str | None
    dag_version: str | None
    bundle_version: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    details: dict[str, Any] = Field(description="The event's details (redacted by Airflow's secrets masker).")
    prev_hash: str | None
    hash: str | None
    readable: bool = Field(True, description="False when the stored body is not an event's JSON (tampered).")


class EventDetail(Event):
    """An event with what it takes to check it by hand."""

    body: str = Field(description="The canonical JSON body its hash covers.")
    chained: bool = Field(description="Whether it is in the hash chain (every event the API lists is).")
    hash_matches: bool = Field(description="SHA-256(prev_hash, seq, body) equals the stored hash.")
    links_to_previous: bool | None = Field(description="prev_hash equals the stored hash of seq - 1.")
    covered_by_checkpoint: bool = Field(description="A signed checkpoint exists at or after this seq.")


class EventPage(BaseModel):
    """A page of events and the cursor of the next one."""

    events: list[Event]
    next_cursor: str | None
    head_seq: int = Field(description="The newest chained event when the page was read.")


class VerificationRun(BaseModel):
    """The outcome of one verification of the whole chain."""

    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    reason: str | None
    detail: str | None
    verified_from: int
    checkpoints: int
    signatures_checked: bool
    pending: int
    warnings: list[str]
    summary: str
    verified_at: str | None = None
    verified_by: str | None = None


class CheckpointInfo(BaseModel):
    """A signed checkpoint: the chain's head at ``seq`` was ``head_hash``."""

    id: int
    seq: int
    head_hash: str
    created_at: str
    key_id: str
    algorithm: str
    signature_valid: bool | None = Field(
        description="Whether the signature verifies with the configured key (null: no key configured, or the "
        "checkpoint was signed with another key)."
    )


class CheckpointPage(BaseModel):
    checkpoints: list[CheckpointInfo]
    next_cursor: str | None


class VerificationStatus(BaseModel):
    """The chain at a glance."""

    head_seq: int = Field(description="The newest chained event.")
    pending: int = Field(description="Events recorded and not chained yet (PostgreSQL).")
    last_verification: VerificationRun | None = Field(description="The newest verification recorded in the trail.")
    last_checkpoint: CheckpointInfo | None
    checkpoint_key: str | None = Field(description="The configured checkpoint key's id, or null.")
    checkpoint_key_error: str | None = None


class Failure(BaseModel, extra="allow"):
    """A failed expectation as the summary keeps it (more fields may appear, per expectation type)."""

    type: str | None = None
    severity: str | None = None
    column: str | None = None
    unexpected_count: int | None = None


class Validation(BaseModel):
    """One stored validation."""

    result_id: str
    created_at: str
    status: Literal["passed", "warned", "failed"]
    quarantined: bool = Field(description="Rows it rejected were moved to quarantine.")
    success: bool
    suite: str
    suite_fingerprint: str
    data_fingerprint: str | None
    rows: int | None
    evaluated_expectations: int | None
    unsuccessful_expectations: int | None
    failures: list[dict[str, Any]] = Field(
        description="Each failed expectation: type, severity, column, unexpected count and samples (as the "
        "task's samples setting allowed)."
    )
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None


class ValidationDetail(Validation):
    """A validation with its summary and the full stored Great Expectations result."""

    summary: dict[str, Any]
    full_result: dict[str, Any]


class ValidationPage(BaseModel):
    validations: list[Validation]
    next_cursor: str | None


class LedgerKey(BaseModel):
    """One idempotency key."""

    namespace: str
    key: str
    dag_id: str | None = Field(description="The DAG of its origin, whose permissions apply.")
    state: str
    retryable: bool | None
    fencing_token: int
    attempts: int
    fingerprint: str
    holder: dict[str, Any] = Field(description="The current or last holder: DAG, run, task, try, host, pid.")
    origin: dict[str, Any]
    lease_expires_at: str | None
    lease_seconds: float
    result_size: int | None
    result_sha256: str | None
    error: str | None
    last_event: str
    last_person: str | None
    last_reason: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    expires_at: str | None


class HistoryItem(BaseModel):
    seq: int
    event: str
    at: str
    state: str | None
    previous_state: str | None
    fencing_token: int | None
    fingerprint: str | None
    holder: dict[str, Any] | None
    previous_holder: dict[str, Any] | None
    person: str | None
    reason: str | None
    error: str | None
    result_sha256: str | None
    result_size: int | None
    details: dict[str, Any] | None


class LedgerKeyDetail(LedgerKey):
    history: list[HistoryItem]


class LedgerPage(BaseModel):
    keys: list[LedgerKey]
    next_cursor: str | None


class ReleaseRequest(BaseModel):
    """A person's release of a key."""

    namespace: str = Field("default", min_length=1, max_length=128, pattern=r"^[^\x00]*$")
    key: str = Field(min_length=1, max_length=512, pattern=r"^[^\x00]*$")
    reason: str = Field(
        min_length=1, max_length=2000, pattern=r"^[^\x00]*$", description="Why it is released (recorded)."
    )


class ReleaseResponse(BaseModel):
    namespace: str
    key: str
    released_by: str
    reason: str
    fencing_token: int
    previous_state: str
    released_at: str


class BudgetFigure(BaseModel):
    """An error budget as its DAG declares it, measured over its window."""

    name: str = Field(description="<task>.<measure>, or <measure> for a measure of the DAG's runs.")
    measure: str = Field(description="quarantined_rows, failed_validations, fallbacks, compensations, releases...")
    task_id: str | None
    max_rate: float = Field(description="The highest acceptable rate, a fraction (0.005 is 0.5 %).")
    window_seconds: float
    on_breach: str = Field(description="fail or warn: what the DAG's check does on a breach.")
    min_count: int
    count: int = Field(description="Errors counted (the numerator).")
    total: int = Field(description="Out of (the denominator).")
    rate: float | None = Field(description="count / total; null when nothing was measured.")
    breached: bool
    since: str
    until: str
    measured_at: str | None = Field(None, description="When the DAG's check recorded this figure (UTC).")


class ErrorBudgetReport(BaseModel):
    """A DAG's error budgets and its error figures per task, from the audit trail."""

    dag_id: str
    since: str
    until: str
    budgets: list[BudgetFigure] = Field(
        description="Each budget as the DAG's newest check measured and recorded it (error_budget.measured)."
    )
    tasks: dict[str, dict[str, int]] = Field(
        description="Counters per task in [since, until) ('(dag)': runs, compensated_runs): validations, rows, "
        "failed_validations, quarantined_rows, effects, fallbacks, compensations, releases."
    )
