"""The dedicated integrity store: engine, schema, migrations. Knows nothing about Airflow operators."""

from __future__ import annotations

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
