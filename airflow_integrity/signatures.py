"""The meaning of a person's electronic signature on a human-in-the-loop task (21 CFR Part 11 §11.50(a)(3)).

Airflow's ``ApprovalOperator`` means approval or rejection, by the option chosen; ``HITLBranchOperator`` a
decision; ``HITLEntryOperator`` data entry. Any other human-in-the-loop task states its meaning by a
``signature_meaning`` attribute (``task.signature_meaning = "review"``, or a class attribute of a subclass);
without one its signatures are recorded as a "review", which ``airflow integrity lint`` reports.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MEANING = "review"
# The meaning of a signature by the class of Airflow's operator; ApprovalOperator depends on the choice.
_MEANINGS = {"HITLBranchOperator": "decision", "HITLEntryOperator": "data entry"}


def operator_class(task: Any) -> type:
    """The class of the task's operator (for a mapped task, the class it maps)."""
    mapped = getattr(task, "operator_class", None)
    return mapped if isinstance(mapped, type) else type(task)


def is_human_in_the_loop(task: Any) -> bool:
    """Whether ``task`` asks a person (one of Airflow's human-in-the-loop operators or a subclass)."""
    return any(cls.__name__ == "HITLOperator" for cls in operator_class(task).__mro__)


def declared_meaning(task: Any) -> str | None:
    """The meaning the task gives its signatures (``"approval/rejection"`` for an approval), or ``None``."""
    declared = getattr(task, "signature_meaning", None)
    if isinstance(declared, str) and declared.strip():
        return declared.strip()
    for cls in operator_class(task).__mro__:
        if cls.__name__ == "ApprovalOperator":
            return "approval/rejection"
        if cls.__name__ in _MEANINGS:
            return _MEANINGS[cls.__name__]
    return None


def signature_meaning(task: Any, chosen: list[str]) -> str:
    """The meaning of the signature of a person who chose ``chosen`` on ``task``."""
    meaning = declared_meaning(task)
    if meaning == "approval/rejection":
        approve = getattr(task, "APPROVE", "Approve")
        return "approval" if approve in chosen else "rejection"
    return meaning or DEFAULT_MEANING
