"""Apply the store's Alembic migrations, safely from several processes at once.

PostgreSQL serialises concurrent runs with a transaction-scoped advisory lock; SQLite with the
write lock that ``BEGIN IMMEDIATE`` takes. Either way the whole upgrade is one transaction, so a
process that waited finds the schema already current and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

VERSION_TABLE = "integrity_alembic_version"
HEAD_REVISION = "a4+l3+v3"
"""The head this package's migrations end at, as :func:`head_revision` computes it with Alembic (a test keeps
the two equal). Knowing it without Alembic lets a process find a current schema with one query; importing
Alembic costs ~0.14 s, more than everything else a task process does to record its first event."""
# Arbitrary constant identifying "integrity store migration" among advisory locks.
_PG_MIGRATION_LOCK_KEY = 0x1A7E_6917
_SCRIPT_LOCATION = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class MigrationResult:
    """Revisions before and after an upgrade."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        """Whether the upgrade applied at least one migration."""
        return self.before != self.after


def _alembic_config(connection: Connection | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def _join(heads: Iterable[str]) -> str | None:
    # Independent parts of the schema (audit log, ledger, ...) may be separate branches; a schema
    # revision is the set of their heads, written "a+b" in sorted order.
    return "+".join(sorted(heads)) or None


def head_revision() -> str | None:
    """The newest revision (all branch heads) this version of the package knows."""
    from alembic.script import ScriptDirectory

    return _join(ScriptDirectory.from_config(_alembic_config()).get_heads())


def current_revision(connection: Connection) -> str | None:
    """The revision the store's schema is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return _join(context.get_current_heads())


def is_at_head(connection: Connection) -> bool:
    """Whether the store's schema is at :data:`HEAD_REVISION`, read with one query and without Alembic.

    ``False`` for a database without the version table yet and for any other revision: the caller then
    takes Alembic's path, which migrates or explains. Other errors (a lost connection) propagate.
    """
    try:
        with connection.begin_nested():
            versions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    except (ProgrammingError, OperationalError) as exc:
        if not _is_missing_table(exc):
            raise
        return False
    return _join(versions) == HEAD_REVISION


def _is_missing_table(exc: DBAPIError) -> bool:
    # PostgreSQL: undefined_table (42P01); SQLite: "no such table".
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc.orig)


def upgrade(engine: Engine, revision: str = "heads") -> MigrationResult:
    """Upgrade the store's schema to ``revision`` in one transaction, holding the migration lock."""
    from alembic import command

    # Alembic narrates every context it opens at INFO; the caller reports the outcome instead.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY})
        else:
            # BEGIN IMMEDIATE is issued lazily on the first statement; take the lock now.
            connection.execute(text("SELECT 1"))
        before = current_revision(connection)
        command.upgrade(_alembic_config(connection), revision)
        after = current_revision(connection)
    return MigrationResult(before=before, after=after)
