"""The plugin's HTTP app requires an Airflow user and reports the store's state."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from airflow_integrity.plugin import URL_PREFIX, IntegrityPlugin
from airflow_integrity.plugin.api import create_app

pytestmark = pytest.mark.integration


def _client_as_user() -> TestClient:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app()
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="reviewer", role="viewer")
    return TestClient(app)


@pytest.mark.requirement("part11.11.10d")
def test_requests_without_credentials_are_refused() -> None:
    client = TestClient(create_app())
    assert client.get("/api/v1/health").status_code == 401
    assert client.get("/static/console.js").status_code == 401


@pytest.mark.requirement("annex11.12")
@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_api_description_and_docs_pages_need_a_user(path: str) -> None:
    client = TestClient(create_app())
    response = client.get(path)
    assert response.status_code == 401
    assert "paths" not in response.text and "swagger" not in response.text.lower()
    assert client.get("/docs/oauth2-redirect").status_code in (401, 404)


def test_api_description_and_docs_pages_are_served_to_a_user() -> None:
    client = _client_as_user()
    description = client.get("/openapi.json")
    assert description.status_code == 200
    paths = description.json()["paths"]
    assert "/api/v1/health" in paths
    assert not {"/openapi.json", "/docs", "/redoc"} & set(paths)  # the docs pages do not describe themselves
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200 and "openapi.json" in response.text
    # Mounted under /integrity by Airflow, the pages point at the description under that prefix.
    mounted = TestClient(client.app, root_path=URL_PREFIX)
    assert f"{URL_PREFIX}/openapi.json" in mounted.get("/docs").text


def test_health_reports_the_configured_store(store_conn_env: str) -> None:
    response = _client_as_user().get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"]["backend"] == ("sqlite" if store_conn_env.startswith("sqlite") else "postgresql")


def test_health_is_503_naming_the_store_when_unreachable(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", "postgresql://u:pw@127.0.0.1:9/integrity")
    response = _client_as_user().get("/api/v1/health")
    assert response.status_code == 503
    assert "connection 'integrity_default'" in response.json()["detail"]


def test_console_bundle_is_served_to_a_user_and_nothing_else_is() -> None:
    from airflow_integrity.plugin import console

    client = _client_as_user()
    bundle = client.get("/static/console.js", params={"v": console.bundle_digest()})
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert bundle.content == (console.STATIC / "console.js").read_bytes()
    assert "immutable" in bundle.headers["cache-control"]
    # Only the address naming this content may be cached: another (an older server's) never is.
    assert client.get("/static/console.js", params={"v": "0" * 16}).headers["cache-control"] == "no-store"
    assert client.get("/static/icon.svg").headers["content-type"].startswith("image/svg+xml")
    for name in ("../__init__.py", "..%2F__init__.py", "nope.js", "%2e%2e%2fconsole.py"):
        assert client.get(f"/static/{name}").status_code == 404, name


def test_console_entries_load_the_shipped_bundle_by_its_digest() -> None:
    import hashlib

    from airflow_integrity.plugin import console

    apps = IntegrityPlugin.react_apps
    assert {(a["destination"], a["url_route"]) for a in apps} == {
        ("nav", "integrity"),
        ("dag_run", "integrity-run"),
        ("task_instance", "integrity-task"),
    }
    served = b"".join((console.STATIC / name).read_bytes() for name in sorted(console.SERVED))
    digest = hashlib.sha256(served).hexdigest()[:16]
    # One address per entry (the UI imports each once) and every address names the shipped content.
    assert len({a["bundle_url"] for a in apps}) == 3
    assert all(a["bundle_url"].startswith(f"/integrity/static/console.js?v={digest}&") for a in apps)
    assert all(a.get("icon") is None or a["icon"].endswith(f"?v={digest}") for a in apps)
    assert IntegrityPlugin().fastapi_apps[0]["url_prefix"] == URL_PREFIX


def test_console_addresses_follow_airflows_base_url(monkeypatch) -> None:
    from airflow_integrity.plugin import console

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://example.org/airflow")
    (nav, *_) = console.react_apps(URL_PREFIX)
    assert nav["bundle_url"].startswith("/airflow/integrity/static/console.js?v=")
    assert nav["icon"].startswith("/airflow/integrity/static/icon.svg?v=")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    assert console.react_apps(URL_PREFIX)[0]["bundle_url"].startswith("/integrity/static/")
