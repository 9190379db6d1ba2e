"""A store database for the two-role set-up: an owner role that owns the database and migrates, and a runtime
role that Airflow components connect as. Roles belong to the whole server, so each set-up makes its own pair
under fresh names and drops them, with the database, afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from tests.pg import PostgresServer


@dataclass(frozen=True)
class TwoRoles:
    """An empty store database owned by ``owner``, and a runtime role with no privilege on it yet."""

    server: PostgresServer
    database: str
    owner: str
    runtime: str

    def url(self, role: str) -> str:
        """The libpq URI of the database for ``role`` (password = role name)."""
        url = make_url(self.server.uri(self.database)).set(username=role, password=role)
        return url.render_as_string(hide_password=False)

    @property
    def owner_url(self) -> str:
        """Connect as the owner."""
        return self.url(self.owner)

    @property
    def runtime_url(self) -> str:
        """Connect as the runtime role."""
        return self.url(self.runtime)

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the server's superuser in the store database."""
        _admin(PostgresServer(self.server.uri(self.database)), sql)


@contextmanager
def two_roles(server: PostgresServer) -> Iterator[TwoRoles]:
    """Create an owner role, a runtime role and a database the owner owns; drop all three afterwards."""
    suffix = uuid.uuid4().hex[:10]
    roles = TwoRoles(server, f"t_roles_{suffix}", f"it_owner_{suffix}", f"it_runtime_{suffix}")
    for role in (roles.owner, roles.runtime):
        _admin(server, f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{role}'")
    _admin(server, f'CREATE DATABASE "{roles.database}" OWNER "{roles.owner}"')
    try:
        yield roles
    finally:
        server.drop_database(roles.database)
        for role in (roles.runtime, roles.owner):
            _admin(server, f'DROP ROLE IF EXISTS "{role}"')


def _admin(server: PostgresServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.admin_uri, autocommit=True) as conn:
        conn.execute(sql)
