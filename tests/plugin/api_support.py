"""A real auth manager with DAG-level permissions for the API tests, and clients that log in with its JWTs.

Airflow's simple auth manager grants by role only (a viewer reads every DAG). ``DagScopedAuthManager`` is the
simple auth manager plus per-user DAG scopes, as FAB or Keycloak give them: a user named in :data:`SCOPES` may
read (and, with a role that allows it, change) only the DAGs listed for them, and nothing store-wide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from fastapi.testclient import TestClient

from tests.airflow_versions import reset_auth_manager

SCOPES: dict[str, frozenset[str]] = {"claims-reviewer": frozenset({"claims"})}
ROLES = {"admin": "admin", "op": "op", "user": "user", "viewer": "viewer", "claims-reviewer": "user"}


class DagScopedAuthManager(SimpleAuthManager):
    """The simple auth manager with per-user DAG scopes (see the module docstring)."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        scope = SCOPES.get(user.get_name())
        if scope is not None and (details is None or details.id not in scope):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def get_authorized_dag_ids(self, *, user: Any, method: Any = "GET", session: Any = None) -> set[str]:
        scope = SCOPES.get(user.get_name())
        if scope is not None:
            return {
                dag_id
                for dag_id in scope
                if self.is_authorized_dag(method=method, user=user, details=_dag(dag_id))
            }
        return super().get_authorized_dag_ids(user=user, method=method)

    def is_authorized_configuration(self, *, method: Any, user: Any, details: Any = None) -> bool:
        if user.get_name() in SCOPES:
            return False
        return super().is_authorized_configuration(method=method, user=user, details=details)


def _dag(dag_id: str) -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return DagDetails(id=dag_id)


@pytest.fixture
def auth_manager(airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagScopedAuthManager]:
    """``DagScopedAuthManager`` as Airflow's configured auth manager, with a JWT secret of its own."""
    from airflow.api_fastapi import app as airflow_app

    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.DagScopedAuthManager")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "integrity-api-tests-" + "s" * 64)
    reset_auth_manager()
    manager = airflow_app.create_auth_manager()
    assert isinstance(manager, DagScopedAuthManager)
    yield manager
    reset_auth_manager()


def login(manager: SimpleAuthManager, app: Any, name: str) -> TestClient:
    """A client of ``app`` sending the JWT Airflow would issue to user ``name`` (role from :data:`ROLES`)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = manager.generate_jwt(SimpleAuthManagerUser(username=name, role=ROLES[name]))
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})
