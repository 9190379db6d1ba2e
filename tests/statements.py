"""The statements this process sends to the store's database, counted where they leave for it: psycopg's cursors
(PostgreSQL, whether through SQLAlchemy or a plain driver connection) and SQLAlchemy's cursor events (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def sent_statements() -> Iterator[list[tuple[str, Any]]]:
    """``(statement, parameters)`` of every statement sent while the block runs, in order."""
    import psycopg
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sent: list[tuple[str, Any]] = []
    execute = psycopg.Cursor.execute

    def sending(cursor: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        sent.append((str(query), params))
        return execute(cursor, query, params, **kwargs)

    def on_sqlite(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if conn.dialect.name == "sqlite":
            sent.append((statement, parameters))

    psycopg.Cursor.execute = sending  # type: ignore[method-assign]
    event.listen(Engine, "before_cursor_execute", on_sqlite)
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", on_sqlite)
