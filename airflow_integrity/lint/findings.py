"""What the lint reports: one finding per task (or file) and kind."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

UNVALIDATED_HANDOFF = "unvalidated-handoff"
UNGUARDED_EFFECT = "unguarded-effect"
UNCOMPENSATED_EFFECT = "uncompensated-effect"
UNSIGNED_APPROVAL = "approval-without-meaning"
IMPORT_ERROR = "import-error"
# Every kind, in the order reports list them, with what it means.
KINDS = {
    UNVALIDATED_HANDOFF: "data handed from one task to the next with no validation on either side",
    UNGUARDED_EFFECT: "an operator with a known external effect and no idempotency key",
    UNCOMPENSATED_EFFECT: "a keyed effect without an undo in a DAG that compensates",
    UNSIGNED_APPROVAL: "a human-in-the-loop task whose signatures state no meaning (21 CFR 11.50(a)(3))",
    IMPORT_ERROR: "a DAG file that Airflow could not import",
}


@dataclass(frozen=True, order=True)
class Finding:
    """One thing the lint found, where it is and what to do about it."""

    file: str
    line: int
    kind: str
    dag_id: str | None
    task_id: str | None
    message: str
    # Whether ``line`` is the task's own (its id is written once in its DAG); if not, it is the DAG's line and no
    # waiver applies to the finding.
    located: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        where = ".".join(part for part in (self.dag_id, self.task_id) if part)
        return f"{self.file}:{self.line}: {where + ': ' if where else ''}{self.kind}: {self.message}"
