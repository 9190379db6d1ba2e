"""The REST side of an e2e cluster: an authenticated client of its API server and the DAG, run and task
instance helpers the tests use. :class:`~tests.e2e.cluster.AirflowCluster` inherits them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from tests.e2e.processes import poll_until

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
API_PAGE_SIZE = 100


class ClusterRest:
    """REST helpers of a running cluster: what they need of it is declared below."""

    base_url: str
    username: str
    password: str
    _client: httpx.Client | None
    _cached_token: str | None

    def _raise_if_component_died(self) -> None:
        raise NotImplementedError

    def logs_tail(self, lines: int = 40, *, access_log: bool = False) -> str:
        raise NotImplementedError

    @property
    def client(self) -> httpx.Client:
        """An unauthenticated HTTP client for ``base_url`` that ignores proxy settings."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=30.0, trust_env=False)
        return self._client

    def token(self) -> str:
        """A fresh JWT from ``POST {base_url}/auth/token`` for the known user."""
        response = self.client.post("/auth/token", json={"username": self.username, "password": self.password})
        _raise_for_status(response)
        return str(response.json()["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send an authenticated request to ``path`` (relative to ``base_url``); renews the token on 401."""
        extra_headers = dict(kwargs.pop("headers", None) or {})
        for attempt in range(2):
            if self._cached_token is None or attempt:
                self._cached_token = self.token()
            headers = {"Authorization": f"Bearer {self._cached_token}", **extra_headers}
            response = self.client.request(method, path, headers=headers, **kwargs)
            if response.status_code != 401:
                break
        return response

    def api(self, method: str, path: str, *, expected: Iterable[int] = (200,), **kwargs: Any) -> Any:
        """Authenticated request that checks the status code and returns the decoded JSON body."""
        response = self.request(method, path, **kwargs)
        _raise_for_status(response, expected)
        return response.json() if response.content else None

    # ------------------------------------------------------------------------------------ DAGs --

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until ``dag_id`` is parsed and visible in ``/api/v2/dags/{dag_id}``, then unpause it."""

        def probe() -> dict[str, Any] | None:
            self._raise_if_component_died()
            response = self.request("GET", f"/api/v2/dags/{dag_id}")
            return response.json() if response.status_code == 200 else None

        dag = poll_until(
            probe,
            timeout=timeout,
            describe=lambda: (
                f"DAG {dag_id!r} not visible after {timeout}s.\n"
                f"Import errors: {self.import_errors()}\n{self.logs_tail()}"
            ),
        )
        if dag.get("is_paused"):
            self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def import_errors(self) -> list[dict[str, Any]]:
        """DAG import errors recorded by the dag-processor."""
        body = self.api("GET", "/api/v2/importErrors", params={"limit": API_PAGE_SIZE})
        return list(body.get("import_errors", []))

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        """Trigger a manual run through ``POST /api/v2/dags/{dag_id}/dagRuns``; returns its ``dag_run_id``."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The DAG run document from ``/api/v2``."""
        return dict(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until the run reaches a final state; return it (``"success"`` or ``"failed"``)."""

        def probe() -> str | None:
            self._raise_if_component_died()
            state = self.dag_run(dag_id, run_id).get("state")
            return state if state in TERMINAL_RUN_STATES else None

        return poll_until(probe, timeout=timeout, describe=lambda: self._describe_run(dag_id, run_id, timeout))

    def _describe_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Diagnostics for a run that did not finish in time."""
        run = self.dag_run(dag_id, run_id)
        hint = ""
        if run.get("state") == "queued":
            hint = (
                "The scheduler never started this run. Besides a paused DAG, a listener or plugin that "
                "fails inside the scheduler loop can cause it, and may be logged only at DEBUG level "
                "(pass AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG in env to see it).\n"
            )
        return (
            f"run {dag_id}/{run_id} not finished after {timeout}s: {run}\n{hint}"
            f"task instances: {self._ti_states(dag_id, run_id)}\n{self.logs_tail()}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All task instances of a run, from ``/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances``."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        items: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", path, params={"limit": API_PAGE_SIZE, "offset": len(items)})
            items.extend(page["task_instances"])
            if not page["task_instances"] or len(items) >= page["total_entries"]:
                return items

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task of a run, as Airflow recorded it (``.../taskInstances/{task_id}/tries``)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return list(self.api("GET", path)["task_instances"])

    def returned(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The deserialized ``return_value`` XCom of one task of a run."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def _ti_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``task_id[map_index] -> state`` for assertion messages."""
        return {
            f"{ti['task_id']}[{ti['map_index']}]": ti.get("state") for ti in self.task_instances(dag_id, run_id)
        }


def _raise_for_status(response: httpx.Response, expected: Iterable[int] = (200, 201)) -> None:
    """Raise ``RuntimeError`` with the method, URL, status and body unless the status is expected."""
    if response.status_code not in tuple(expected):
        request = response.request
        raise RuntimeError(
            f"{request.method} {request.url} -> HTTP {response.status_code}: {response.text[:2000]}"
        )
