"""The audit trail: the event and its canonical form (``event``), the hash chain (``chain``), its verification
(``verify``, ``scan``), export and tail, signed checkpoints (``checkpoints``), the local spool (``spool``) and
the schema of its tables (``schema``).

Importing the package loads none of its modules; each name below loads its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_integrity.lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.event import AuditEvent, AuditRecord
    from airflow_integrity.store.audit.signing import CheckpointKey
    from airflow_integrity.store.audit.verify import VerifyResult

__all__ = ["AuditEvent", "AuditLog", "AuditRecord", "CheckpointKey", "VerifyResult"]

_MODULES = {
    "AuditEvent": "event",
    "AuditLog": "chain",
    "AuditRecord": "event",
    "CheckpointKey": "signing",
    "VerifyResult": "verify",
}

__getattr__, __dir__ = lazy_exports(globals(), _MODULES)
