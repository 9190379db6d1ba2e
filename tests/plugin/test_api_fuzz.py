"""Property-based fuzz of the integrity API from its own OpenAPI description (schemathesis): whatever the
parameters, headers and bodies, no answer is a server error, and every answer documented in the description has
the shape it documents. Run as an admin (every route reachable) against a store with events, validations and keys
on each backend."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from airflow_integrity.plugin.api import create_app
from tests.plugin.api_support import auth_manager, login  # noqa: F401 (fixture)
from tests.plugin.test_console_api import _claimed, _seed_trail, _validation

pytestmark = pytest.mark.integration


@pytest.fixture
def admin_headers(auth_manager) -> dict[str, str]:  # noqa: F811
    client = login(auth_manager, None, "admin")
    return {"Authorization": client.headers["Authorization"]}


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_no_input_makes_the_api_fail(store_conn_env: str, auth_manager, admin_headers: dict[str, str]) -> None:  # noqa: F811
    from airflow_integrity.store import IntegrityStore, StoreLocation

    IntegrityStore(StoreLocation.from_url(store_conn_env, source="test")).migrate()
    _seed_trail()
    _validation("claims", "r1", "failed", quarantine=True)
    _claimed("claim-1", "claims")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(), headers=admin_headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        _fuzz(operation, admin_headers)


def _fuzz(operation: Any, admin_headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def one(case: Any) -> None:
        response = case.call(headers={**admin_headers, **(case.headers or {})})
        where = f"{case.method} {case.formatted_path} {case.query}"
        if case.operation.path.endswith("/dagRuns"):
            # Outside Airflow's API server it answers 503; tests/plugin/test_idempotent_trigger.py runs it there.
            assert response.status_code < 500 or response.status_code == 503, f"{where}: {response.text[:500]}"
            return
        assert response.status_code < 500, f"{where}: {response.text[:500]}"
        if response.status_code < 300 and "json" in (response.headers.get("content-type") or [""])[0]:
            response_schema_conformance(None, response, case)  # type: ignore[arg-type]

    one()
