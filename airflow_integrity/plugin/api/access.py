"""Who may see and change what, asked of Airflow's auth manager for every request (never a user list of ours).

DAG-level data (events, validations and keys of a DAG) follows Airflow's DAG permissions:

=====================================  ==============================================================
reading a DAG's events, validations,   ``is_authorized_dag(GET)`` on that DAG; a user allowed every DAG
keys                                   sees everything, including DAGs deleted since
releasing a DAG's key                  ``is_authorized_dag(PUT, TASK_INSTANCE)`` on the key's DAG (its
                                       origin's), as clearing one of its task instances would need
triggering a run (idempotent trigger)  ``is_authorized_dag(POST, RUN)``, as Airflow's own trigger call
=====================================  ==============================================================

Store-wide data has no DAG: events recorded outside any DAG, keys claimed outside any DAG, the chain's
verification status and its checkpoints. Reading it needs the **configuration read** permission
(``is_authorized_configuration(GET)``), changing it (running a verification, releasing a key of no DAG) the
**configuration edit** permission (``is_authorized_configuration(PUT)``): with Airflow's simple auth manager a
viewer may read, an op or admin may change; with FAB, the roles that may read or edit the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, Request, status

CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def _team(dag_id: str) -> str | None:
    from airflow.configuration import conf

    if not conf.getboolean("core", "multi_team", fallback=False):
        return None
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


@dataclass
class Access:
    """The authenticated user and what the auth manager lets them do (answers are cached per request)."""

    user: Any
    _cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The user's name, as recorded in the audit trail."""
        return str(self.user.get_name())

    def _dag(self, method: str, dag_id: str | None, entity: str | None = None) -> bool:
        marker = ("dag", method, dag_id or "", entity or "")
        if marker not in self._cache:
            from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

            details = DagDetails(id=dag_id, team_name=_team(dag_id)) if dag_id else None
            self._cache[marker] = bool(
                _auth_manager().is_authorized_dag(
                    method=method,
                    access_entity=DagAccessEntity[entity] if entity else None,
                    details=details,
                    user=self.user,
                )
            )
        return bool(self._cache[marker])

    def _store(self, method: str) -> bool:
        marker = ("store", method)
        if marker not in self._cache:
            self._cache[marker] = bool(_auth_manager().is_authorized_configuration(method=method, user=self.user))
        return bool(self._cache[marker])

    @property
    def store_wide_read(self) -> bool:
        """Whether the user may read what belongs to no DAG (configuration read permission)."""
        return self._store("GET")

    def readable_dags(self) -> frozenset[str] | None:
        """The DAGs whose data the user may read; ``None`` when they may read every DAG."""
        if "readable" not in self._cache:
            if self._dag("GET", None):
                self._cache["readable"] = None
            else:
                ids = _auth_manager().get_authorized_dag_ids(user=self.user, method="GET")
                self._cache["readable"] = frozenset(ids)
        readable: frozenset[str] | None = self._cache["readable"]
        return readable

    def may_read(self, dag_id: str | None) -> bool:
        """Whether the user may read data of ``dag_id`` (``None``: store-wide data)."""
        return self.store_wide_read if dag_id is None else self._dag("GET", dag_id)

    def require_read(self, dag_id: str | None) -> None:
        """Raise 403 unless the user may read data of ``dag_id`` (store-wide data when ``None``)."""
        if not self.may_read(dag_id):
            raise _forbidden(dag_id, "read")

    def require_dag(self, dag_id: str | None, method: str, entity: str) -> None:
        """Raise 403 unless the user may ``method`` the DAG's ``entity`` (store-wide edit when ``dag_id`` is
        ``None``)."""
        allowed = self._store("PUT") if dag_id is None else self._dag(method, dag_id, entity)
        if not allowed:
            raise _forbidden(dag_id, "change")

    def require_store_wide_edit(self) -> None:
        """Raise 403 unless the user may change store-wide state (configuration edit permission)."""
        if not self._store("PUT"):
            raise _forbidden(None, "change")


def _forbidden(dag_id: str | None, what: str) -> HTTPException:
    scope = f"DAG {dag_id!r}" if dag_id else "store-wide integrity data (the configuration permission)"
    return HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: you may not {what} {scope}.")


def current_access(user: GetUserDep) -> Access:
    """The request's :class:`Access` (401 without an authenticated Airflow user)."""
    return Access(user)


AccessDep = Annotated[Access, Depends(current_access)]


def refuse_cross_site(request: Request) -> None:
    """A browser request sent by a page of another site (or of a sibling subdomain) changes nothing.

    The UI's session cookie is ``SameSite=Lax``, which keeps other sites' forms out but not a same-site page's;
    browsers name the sender in ``Sec-Fetch-Site``. Clients that are not browsers send no such header and
    authenticate with a token.
    """
    if request.method in CHANGING_METHODS and request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "A page of another site may not change anything: use the Airflow UI or call the API with a token.",
        )
