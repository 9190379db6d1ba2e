"""One ephemeral GX context per process, with its pandas batch definition and SQL datasources, reused by every
validation (creating them costs far more than most validations).

GX's context is not thread-safe, so runs are serialised with a lock; a forked child builds its own context.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import warnings
from typing import Any

_LOCK = threading.RLock()
_RUNTIME: _Runtime | None = None


class _Runtime:
    def __init__(self) -> None:
        import great_expectations as gx

        self.pid = os.getpid()
        self.context = gx.get_context(mode="ephemeral")
        with contextlib.suppress(Exception):  # analytics are optional in GX builds; nothing to disable then
            self.context.enable_analytics(False)
        self.context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
        datasource = self.context.data_sources.add_pandas("integrity_frames")
        asset = datasource.add_dataframe_asset("frame")
        self.frame_batches = asset.add_batch_definition_whole_dataframe("whole_frame")
        self.sql_sources: dict[str, Any] = {}
        self.sql_batches: dict[tuple[str, str], Any] = {}


def runtime() -> _Runtime:
    """The process's GX runtime, created on first use (and again in a forked child)."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is None or _RUNTIME.pid != os.getpid():
            _RUNTIME = _Runtime()
        return _RUNTIME


def run_lock() -> threading.RLock:
    """The lock that serialises GX runs in this process."""
    return _LOCK


def _validator(batch_definition: Any, batch_parameters: dict[str, Any] | None, result_format: Any) -> Any:
    # The validator GX's ValidationDefinition.run uses, without its store bookkeeping (which would re-id
    # the suite's expectations): it loads the batch once, where Batch.validate loads it twice.
    from great_expectations.validator.v1_validator import Validator

    return Validator(
        batch_definition=batch_definition, batch_parameters=batch_parameters, result_format=result_format
    )


def frame_validator(frame: Any, result_format: Any) -> Any:
    """A GX validator over a pandas DataFrame; call ``validate_expectation_suite(suite, parameters)``."""
    return _validator(runtime().frame_batches, {"dataframe": frame}, result_format)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sql_validator(
    connection_string: str, *, query: str | None, table: str | None, schema: str | None, result_format: Any
) -> Any:
    """A GX validator over an SQL query or table, so that GX evaluates the expectations in the database.

    One datasource per connection string and one asset per query/table are kept for the process's life.

    Args:
        connection_string: SQLAlchemy URL including credentials (kept in memory only).
        query: A SELECT statement, or ``None`` when ``table`` is given.
        table: A table name, or ``None`` when ``query`` is given.
        schema: The table's schema, if not the default.
        result_format: GX result format.
    """
    rt = runtime()
    source_name = f"sql_{_short_hash(connection_string)}"
    asset_key = f"q:{query}" if query is not None else f"t:{schema}.{table}"
    key = (source_name, asset_key)
    batches = rt.sql_batches.get(key)
    if batches is None:
        with warnings.catch_warnings():
            # GX suggests dialect-specific datasources; the generic one serves every SQLAlchemy dialect.
            warnings.simplefilter("ignore")
            datasource = rt.sql_sources.get(source_name)
            if datasource is None:
                datasource = rt.context.data_sources.add_sql(name=source_name, connection_string=connection_string)
                rt.sql_sources[source_name] = datasource
            asset_name = f"asset_{_short_hash(asset_key)}"
            if query is not None:
                asset = datasource.add_query_asset(asset_name, query=query)
            else:
                asset = datasource.add_table_asset(asset_name, table_name=str(table), schema_name=schema)
            batches = asset.add_batch_definition_whole_table("whole")
        rt.sql_batches[key] = batches
    return _validator(batches, None, result_format)
