"""Connection fields and URLs map to exactly one supported backend, or to an error that says what to fix."""

from __future__ import annotations

import pytest

from airflow_integrity.store import StoreConfigurationError, StoreLocation

pytestmark = pytest.mark.unit


def test_postgres_connection_uses_psycopg_and_keeps_socket_host() -> None:
    location = StoreLocation.from_fields(
        source="connection 'integrity_default'",
        conn_type="postgres",
        host=None,
        port=None,
        login="postgres",
        password="s3cret",
        schema="integrity",
        extra={"host": "/run/pg", "sslmode": "disable", "unrelated": "x"},
    )
    assert location.backend == "postgresql"
    assert location.url.drivername == "postgresql+psycopg"
    assert location.url.database == "integrity"
    assert dict(location.url.query) == {"host": "/run/pg", "sslmode": "disable"}
    assert "s3cret" not in location.display


def test_integrity_connection_type_selects_backend_from_extra(tmp_path) -> None:
    sqlite = StoreLocation.from_fields(
        source="c",
        conn_type="integrity",
        host=str(tmp_path / "store.db"),
        port=None,
        login=None,
        password=None,
        schema=None,
        extra={"backend": "sqlite"},
    )
    assert sqlite.backend == "sqlite"
    assert sqlite.url.database == str(tmp_path / "store.db")
    pg = StoreLocation.from_fields(
        source="c", conn_type="integrity", host="db", port=5433, login="u", password="p", schema="s", extra={}
    )
    assert (pg.backend, pg.url.host, pg.url.port) == ("postgresql", "db", 5433)


def test_from_url_round_trips_both_backends(tmp_path) -> None:
    assert StoreLocation.from_url(f"sqlite:///{tmp_path}/x.db").url.database == f"{tmp_path}/x.db"
    pg = StoreLocation.from_url("postgresql://u:p@db.example:5432/integrity")
    assert (pg.backend, pg.url.host, pg.url.database) == ("postgresql", "db.example", "integrity")


@pytest.mark.parametrize("conn_type", ["mysql", "http", "", None])
def test_unsupported_scheme_names_the_connection_and_the_fix(conn_type) -> None:
    with pytest.raises(StoreConfigurationError) as err:
        StoreLocation.from_fields(
            source="connection 'integrity_default'",
            conn_type=conn_type,
            host="h",
            port=None,
            login=None,
            password=None,
            schema=None,
        )
    message = str(err.value)
    assert "connection 'integrity_default'" in message
    assert "postgresql://" in message


def test_postgres_without_host_is_refused() -> None:
    with pytest.raises(StoreConfigurationError, match="has no host"):
        StoreLocation.from_fields(
            source="c", conn_type="postgres", host=None, port=None, login=None, password=None, schema="db"
        )


def test_sqlite_without_path_is_refused() -> None:
    with pytest.raises(StoreConfigurationError, match="file path"):
        StoreLocation.from_fields(
            source="c", conn_type="sqlite", host=None, port=None, login=None, password=None, schema=None
        )


def test_garbage_url_is_refused() -> None:
    with pytest.raises(StoreConfigurationError, match="not a database URL"):
        StoreLocation.from_url("::not a url::", source="INTEGRITY_TEST")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("store", "metadata", "same"),
    [
        ("postgresql://u:p@127.0.0.1:5432/airflow", "postgresql+psycopg://x@localhost/airflow", True),
        ("postgresql://u:p@127.0.0.1:5432/airflow", "postgresql://x@/airflow?host=/var/run/postgresql", True),
        # libpq connects to the query's host: the URL's host is a decoy.
        ("postgresql://u:p@decoy:5432/airflow?host=postgres", "postgresql://x@postgres/airflow", True),
        ("postgresql://u:p@db:5432/airflow", "postgresql://x@db:5432/airflow?port=6432", False),
        ("postgresql://u:p@db/integrity", "postgresql://x@db/airflow", False),
        ("postgresql://u:p@db.example/airflow", "postgresql://x@other.example/airflow", False),
        ("sqlite:///:memory:", "sqlite:///:memory:", False),  # each in-memory database is its own
    ],
)
def test_a_store_knows_whether_a_database_url_names_its_own_database(
    store: str, metadata: str, same: bool
) -> None:
    assert StoreLocation.from_url(store).same_database_as(metadata) is same
