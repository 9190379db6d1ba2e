"""The dedicated integrity store: engine, schema, migrations. Knows nothing about Airflow operators.

Importing the package loads none of its modules; each public name loads its module on first use, so that a
DAG file importing an operator (which needs only ``store.ledger.defaults``) does not pay for the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_integrity.lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_integrity.store.errors import (
        SchemaNotCurrentError,
        StoreConfigurationError,
        StoreError,
        StoreUnavailableError,
    )
    from airflow_integrity.store.location import StoreLocation
    from airflow_integrity.store.store import IntegrityStore

__all__ = [
    "IntegrityStore",
    "SchemaNotCurrentError",
    "StoreConfigurationError",
    "StoreError",
    "StoreLocation",
    "StoreUnavailableError",
]

_MODULES = {
    "IntegrityStore": "store",
    "SchemaNotCurrentError": "errors",
    "StoreConfigurationError": "errors",
    "StoreError": "errors",
    "StoreLocation": "location",
    "StoreUnavailableError": "errors",
}

__getattr__, __dir__ = lazy_exports(globals(), _MODULES)
