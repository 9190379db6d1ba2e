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
from collections.abc import Iterator
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


@contextlib.contextmanager
def without_batch_hash() -> Iterator[None]:
    """Keep GX's pandas engine from hashing the batch it loads, while the ``with`` block runs.

    GX md5-hashes every in-memory batch below 1 GB (``pandas.util.hash_pandas_object``, then md5) into the
    result's batch markers (``pandas_data_fingerprint``): about 0.2 s per million rows, more than the SHA-256
    content fingerprint that the summary, the audit event and the store carry for the same frame. GX reads
    that threshold from its module at each batch load, so it is changed for the process while the block runs:
    call it under :func:`run_lock` (our runs are serialised; GX called directly from another thread at the same
    moment would not hash its batch either). Without that module setting (another GX version) GX hashes as
    before.
    """
    try:
        from great_expectations.execution_engine import pandas_execution_engine as engine
    except ImportError:  # pragma: no cover - GX without its pandas engine
        yield
        return
    saved = getattr(engine, "HASH_THRESHOLD", None)
    if not isinstance(saved, (int, float)):
        yield
        return
    engine.HASH_THRESHOLD = 0  # GX hashes when the frame's memory use is below it: never
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


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
