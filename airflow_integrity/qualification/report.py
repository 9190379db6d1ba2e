"""The qualification report: each check's outcome, for people and as signed JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_integrity.store.audit.signing import CheckpointKey

FORMAT = "airflow-integrity qualification report"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, what it saw (``facts``) and, when it failed, what to do."""

    name: str
    passed: bool
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every check of one qualification run, and the deployment it ran against."""

    qualification_id: str
    started_at: str
    host: str
    checks: list[CheckResult] = field(default_factory=list)
    finished_at: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def body(self) -> dict[str, Any]:
        """The report as signed: canonical JSON of this dictionary."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "qualification_id": self.qualification_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "host": self.host,
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
        }

    def signed(self, key: CheckpointKey | None) -> dict[str, Any]:
        """The JSON report, with a signature over its canonical body when ``key`` can sign."""
        body = self.body()
        if key is None or not key.can_sign:
            return {**body, "signature": None}
        signature = {"key_id": key.key_id, "algorithm": key.algorithm, "value": key.sign(canonical(body))}
        return {**body, "signature": signature}

    def text(self) -> str:
        width = max((len(check.name) for check in self.checks), default=0)
        lines = [f"airflow-integrity qualification {self.qualification_id} on {self.host}, {self.started_at}"]
        for check in self.checks:
            lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.name:<{width}}  {check.summary}")
        verdict = (
            "QUALIFIED: every check passed"
            if self.passed
            else "NOT QUALIFIED: " + ", ".join(check.name for check in self.checks if not check.passed) + " failed"
        )
        lines.append(verdict)
        return "\n".join(lines)


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def load_report(text: str) -> dict[str, Any]:
    """A JSON report as written: an object in which no key appears twice (a reader and the check must see the
    same values).

    Raises:
        ValueError: Not JSON, a repeated key, or not an object.
    """
    from airflow_integrity.store.audit.archive import unique_keys

    document = json.loads(text, object_pairs_hook=unique_keys)
    if not isinstance(document, dict):
        raise ValueError("a qualification report is a JSON object")
    return document


def verify_report(document: dict[str, Any], keys: list[CheckpointKey]) -> tuple[bool, str]:
    """Whether a JSON report's signature verifies with one of ``keys``, and why not."""
    signature = document.get("signature")
    if not isinstance(signature, dict):
        return False, "the report is not signed (no checkpoint key was configured when it was made)"
    body = {name: value for name, value in document.items() if name != "signature"}
    for key in keys:
        if key.key_id == signature.get("key_id") and key.algorithm == signature.get("algorithm"):
            if key.verify(canonical(body), signature.get("value")):
                return True, f"signed by {key.algorithm} key {key.key_id}; the report is as it was made"
            return False, "the signature does not match the report: it was changed after it was signed"
    return False, f"no key given is the signing key {signature.get('key_id')} ({signature.get('algorithm')})"
