"""Idempotent triggering: ``POST /dags/{dag_id}/dagRuns`` with an ``Idempotency-Key`` header.

Airflow's own trigger call answers a repeated ``dag_run_id`` with 409 and no run, so a client whose call timed
out cannot tell whether its run exists. Here the key is claimed in the idempotency ledger (namespace
:data:`NAMESPACE`, key ``<dag_id>:<Idempotency-Key>``, the request body's fingerprint) and the run is created by
Airflow's own ``POST /api/v2/dags/{dag_id}/dagRuns``, called in the same process with the caller's credentials:
Airflow's permissions, validation and trigger logic apply unchanged. Then:

* the first call creates the run and answers with Airflow's response (200);
* the same key with the same body answers with the same run (200, header ``Idempotent-Replayed: true``), also
  when the calls arrive at once (the later ones wait for the first);
* the same key with another body is refused with 422 naming both fingerprints;
* an error answered by Airflow (400, 403, 404, 409) is passed on and the key stays claimable, so that the same
  call can be retried.

The run id is the body's ``dag_run_id`` or, when it has none, ``manual__idempotent_`` and 24 hex digits of the
key's SHA-256: an attempt that takes over from one that died after Airflow created the run finds that run
instead of creating a second. Every decision is an ``idempotency.*`` audit event with the user as actor.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from airflow_integrity.plugin.api.access import AccessDep
from airflow_integrity.plugin.middleware import current_root_app

router = APIRouter(tags=["Idempotent triggering"])
NAMESPACE = "airflow_dag_runs"
# How long a duplicate call waits for the first one to finish, in seconds.
MAX_WAIT = 60.0
LEASE_SECONDS = 60.0
_FORWARDED = ("authorization", "cookie")


class AirflowAnswered(Exception):
    """Airflow's trigger call answered with an error: nothing was created."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__(f"Airflow answered {status_code}: {body}")
        self.status_code = status_code
        self.body = body


def derived_run_id(ledger_key: str) -> str:
    """The run id used when the body names none: stable for the key, so a takeover finds the run."""
    return "manual__idempotent_" + hashlib.sha256(ledger_key.encode("utf-8")).hexdigest()[:24]


async def _call_airflow(app: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://airflow-api-server") as client:
        return await client.request(method, path, headers=headers, json=body)


def _answer(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:2000]}


@router.post(
    "/dags/{dag_id}/dagRuns",
    summary="Trigger a DAG run at most once per Idempotency-Key",
    responses={
        409: {"description": "Airflow refused the run id, or the first call with this key is still running."},
        422: {"description": "The key was used with another body (both fingerprints are named)."},
    },
)
async def trigger_dag_run(
    access: AccessDep,
    request: Request,
    dag_id: Annotated[str, Path(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_.\-]+$")],
    idempotency_key: Annotated[
        str, Header(alias="Idempotency-Key", min_length=1, max_length=255, description="The client's key.")
    ],
) -> JSONResponse:
    """Create a run of ``dag_id`` with Airflow's trigger call (same body, same answer), once per key."""
    from airflow.exceptions import AirflowException, AirflowFailException

    from airflow_integrity.hooks.idempotency import IdempotencyGuard
    from airflow_integrity.store.ledger.codec import inputs_digest

    if "\x00" in idempotency_key or not idempotency_key.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Idempotency-Key must be text without NUL.")
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "The body must be a JSON object, as Airflow's trigger call takes."
        ) from None
    if not isinstance(body, dict):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "The body must be a JSON object, as Airflow's trigger call takes."
        )
    access.require_dag(dag_id, "POST", "RUN")
    app = current_root_app()
    if app is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Idempotent triggering runs inside Airflow's API server only."
        )

    ledger_key = f"{dag_id}:{idempotency_key}"
    fingerprint = inputs_digest({"dag_id": dag_id, "body": body})
    run_id = body.get("dag_run_id") or derived_run_id(ledger_key)
    payload = {**body, "dag_run_id": run_id}
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    path = f"/api/v2/dags/{dag_id}/dagRuns"
    guard = IdempotencyGuard(
        key=ledger_key,
        fingerprint=fingerprint,
        namespace=NAMESPACE,
        lease_seconds=LEASE_SECONDS,
        holder={"dag_id": dag_id, "via": "integrity API", "user": access.name},
        business_key=idempotency_key,
        max_wait=MAX_WAIT,
        person=access.name,
        dag_id=dag_id,
    )

    def work(claim: Any) -> Any:
        from anyio import from_thread

        response = from_thread.run(_call_airflow, app, "POST", path, headers, payload)
        adopt = response.status_code == status.HTTP_409_CONFLICT and (claim.takeover or "dag_run_id" not in body)
        if adopt:  # an earlier attempt with this key created the run and died before recording it
            response = from_thread.run(_call_airflow, app, "GET", f"{path}/{run_id}", headers)
        if response.status_code >= 300:
            raise AirflowAnswered(response.status_code, _answer(response))
        return response.json()

    try:
        result = await run_in_threadpool(guard.run, work)
    except AirflowAnswered as answered:
        return JSONResponse(answered.body, status_code=answered.status_code)
    except AirflowFailException as exc:
        stored = await run_in_threadpool(_stored_fingerprint, ledger_key)
        if stored is not None and stored != fingerprint:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                {
                    "message": f"Idempotency-Key {idempotency_key!r} of DAG {dag_id!r} was first used with "
                    "another body; use a new key for a different run.",
                    "stored_fingerprint": stored,
                    "request_fingerprint": fingerprint,
                },
            ) from exc
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except AirflowException as exc:  # still waiting for the first call with this key
        raise HTTPException(
            status.HTTP_409_CONFLICT, str(exc), headers={"Retry-After": str(int(LEASE_SECONDS))}
        ) from exc
    return JSONResponse(
        result.value,
        headers={
            "Idempotent-Replayed": "true" if result.replayed else "false",
            "Idempotency-Key": idempotency_key,
        },
    )


def _stored_fingerprint(ledger_key: str) -> str | None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    with IntegrityCheckHook().get_ledger(NAMESPACE) as ledger:
        entry = ledger.get(ledger_key)
    return entry.fingerprint if entry is not None else None
