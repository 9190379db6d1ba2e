"""Errors raised by the integrity store. Each message names what is wrong and how to fix it."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every integrity-store error."""


class StoreConfigurationError(StoreError):
    """The connection that locates the store cannot describe a supported database."""


class StoreUnavailableError(StoreError):
    """The store's database cannot be reached or refused the connection."""


class SchemaNotCurrentError(StoreError):
    """The store's schema is older (or newer) than this version of airflow-integrity expects."""
