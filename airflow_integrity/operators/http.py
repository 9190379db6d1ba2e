"""``IdempotentHttpOperator``: an HTTP call whose effect happens once per business key."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.http.operators.http import HttpOperator

from airflow_integrity.compat import AirflowException, AirflowFailException
from airflow_integrity.operators._idempotency import (
    IDEMPOTENCY_TEMPLATE_FIELDS,
    NOTHING_TO_UNDO,
    IdempotencyMixin,
)
from airflow_integrity.settings import default_deferrable
from airflow_integrity.store.ledger import DEFAULT_LEASE_SECONDS, DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from airflow.sdk import Context
    from requests import Response

    from airflow_integrity.hooks.idempotency import IdempotencyClaim

IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_STORED_HEADERS = ("Content-Type", "Location", IDEMPOTENCY_HEADER)


def summarize_response(response: Response, stored_headers: Sequence[str]) -> dict[str, Any]:
    """The JSON-serialisable record of a response that is stored and replayed.

    Args:
        response: The HTTP response.
        stored_headers: Response headers to keep (case-insensitive; absent ones are left out).

    Returns:
        ``{"status_code", "reason", "headers", "json"}`` when the body is JSON, else ``"text"`` instead of
        ``"json"``.
    """
    summary: dict[str, Any] = {
        "status_code": response.status_code,
        "reason": response.reason,
        "headers": {name: response.headers[name] for name in stored_headers if name in response.headers},
    }
    try:
        summary["json"] = response.json()
    except (ValueError, json.JSONDecodeError):
        summary["text"] = response.text
    return summary


@dataclass(frozen=True)
class HttpCompensation:
    """The request that undoes an ``IdempotentHttpOperator``'s effect, for example a refund of a payment.

    Each field is a value or a callable of the stored response of the effect (``{"status_code", "headers",
    "json" | "text"}``), so the request can name what the effect created::

        HttpCompensation(
            endpoint="/refunds",
            data=lambda paid: {"payment_id": paid["json"]["payment_id"]},
        )

    The request carries the compensation's key (``<key>/compensation``) in the operator's idempotency header, so
    the service can deduplicate it too. A response of 400 or more fails the compensation (retried).

    Args:
        endpoint: The endpoint to call.
        method: The HTTP method.
        data: The body: a dict or list is sent as JSON, anything else as given.
        headers: Extra request headers.
        http_conn_id: The connection (default: the effect's).
    """

    endpoint: str | Callable[[Any], str]
    method: str = "POST"
    data: Any = None
    headers: Mapping[str, str] | Callable[[Any], Mapping[str, str]] | None = None
    http_conn_id: str | None = None

    def request(self, stored: Any) -> tuple[str, Any, dict[str, str]]:
        """Endpoint, body and headers of the request undoing the effect whose stored response is ``stored``."""

        def value(field: Any) -> Any:
            return field(stored) if callable(field) else field

        data, headers = value(self.data), dict(value(self.headers) or {})
        if isinstance(data, (dict, list)):
            data = json.dumps(data)
            headers.setdefault("Content-Type", "application/json")
        return str(value(self.endpoint)), data, headers


class IdempotentHttpOperator(IdempotencyMixin, HttpOperator):
    """Call an HTTP endpoint at most once per idempotency key and replay the stored response afterwards.

    The key travels in the ``Idempotency-Key`` request header, so an API that honours it deduplicates the
    one window this operator cannot close alone: a worker that dies after the API acted but before the
    response was recorded. The retry then sends the same key again and the API answers with its first result.
    The response (status, chosen headers, JSON or text body) becomes the task's return value and is replayed
    to every later attempt without calling the API again. The request always runs on the worker, under the
    key's lease; ``deferrable`` only decides how the task waits while another attempt holds the key.

    Args:
        key: The business idempotency key (templated), for example ``"claim-{{ params.claim_id }}"``.
        namespace: The key's namespace (templated).
        lease_seconds: How long a claim stays live without a heartbeat (renewed every third of it).
        fingerprint_inputs: Values that define the effect (templated); default: method, endpoint and data.
        business_key: Business key of the audit events (templated; default: the key).
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        idempotency_header: Request header that carries the key.
        stored_headers: Response headers kept in the stored result.
        deferrable: Wait for another holder in the triggerer instead of in the worker.
        poll_interval: Seconds between looks at the ledger while deferred.
        max_wait: Longest wait for another holder, in seconds, before this try fails (retryably).
        compensate: How to undo the effect when the process fails for good after it happened (run by the DAG's
            ``CompensateOperator``, exactly once per effect): an ``HttpCompensation`` request, or a callable as
            ``IdempotentPythonOperator`` takes, or ``NOTHING_TO_UNDO``. An effect made through the fallback is
            undone through it.
        fallback_http_conn_id: A second provider's connection (templated), called with the same request and key
            only when the primary provably did nothing: it refused the connection, could not be reached in
            time, or answered 503 Service Unavailable. A request that may have reached the primary (a timeout
            or a dropped connection after sending) is never sent to the fallback: the task fails without retry
            for a person to check. Audited as ``fallback.used`` with the reason; the stored response then
            carries ``"fallback": {"http_conn_id", "reason"}``.
        kwargs: Arguments of ``HttpOperator`` (``http_conn_id``, ``endpoint``, ``method``, ``data``,
            ``headers``, ``response_check``, ``response_filter`` - whose value, then, is the stored result and
            must be JSON-serialisable - ...).
    """

    template_fields: Sequence[str] = (
        *HttpOperator.template_fields,
        *IDEMPOTENCY_TEMPLATE_FIELDS,
        "fallback_http_conn_id",
    )

    def __init__(
        self,
        *,
        key: str,
        namespace: str = DEFAULT_NAMESPACE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        fingerprint_inputs: Any = None,
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        idempotency_header: str = IDEMPOTENCY_HEADER,
        stored_headers: Sequence[str] = DEFAULT_STORED_HEADERS,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        max_wait: float | None = None,
        compensate: HttpCompensation | Callable[..., Any] | str | None = None,
        fallback_http_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        deferrable = default_deferrable() if deferrable is None else deferrable
        super().__init__(deferrable=False, **kwargs)
        if fallback_http_conn_id is not None and self.response_filter is not None:
            raise ValueError(
                f"Task {self.task_id!r}: fallback_http_conn_id= and response_filter= cannot be combined: the "
                "stored result must say which provider acted, so that its compensation goes there."
            )
        if fallback_http_conn_id is not None and self.retry_args:
            raise ValueError(
                f"Task {self.task_id!r}: fallback_http_conn_id= and retry_args= cannot be combined (a retried "
                "request may have reached the primary); let the task's retries call the primary again instead."
            )
        self.fallback_http_conn_id = fallback_http_conn_id
        if compensate is not None and not (
            isinstance(compensate, HttpCompensation) or callable(compensate) or compensate == NOTHING_TO_UNDO
        ):
            raise TypeError(
                f"Task {self.task_id!r}: compensate= must be an HttpCompensation (the request that undoes the "
                f"effect), a callable, or NOTHING_TO_UNDO; got {type(compensate).__name__}."
            )
        self.compensate = compensate
        self._init_idempotency(
            key=key,
            namespace=namespace,
            lease_seconds=lease_seconds,
            fingerprint_inputs=fingerprint_inputs,
            business_key=business_key,
            integrity_conn_id=integrity_conn_id,
            deferrable=deferrable,
            poll_interval=poll_interval,
            max_wait=max_wait,
        )
        self.idempotency_header = idempotency_header
        self.stored_headers = tuple(stored_headers)

    def execute(self, context: Context) -> Any:
        """Claim the key, then call the endpoint, replay the stored response, wait, or refuse."""
        inputs = {"method": (self.method or "").upper(), "endpoint": self.endpoint, "data": self.data}
        return self.run_guarded(context, inputs, lambda claim: self._call(context, claim))

    def undo_effect(self, context: Context, result: Any, effect: dict[str, Any], claim: IdempotencyClaim) -> Any:
        """Send the ``HttpCompensation`` request (or call the callable) under the compensation's key."""
        if not isinstance(self.compensate, HttpCompensation):
            return super().undo_effect(context, result, effect, claim)
        from airflow.providers.http.hooks.http import HttpHook

        endpoint, data, headers = self.compensate.request(result)
        headers[self.idempotency_header] = claim.key
        method = self.compensate.method.upper()
        via = (result.get("fallback") or {}).get("http_conn_id") if isinstance(result, dict) else None
        hook = HttpHook(method=method, http_conn_id=via or self.compensate.http_conn_id or self.http_conn_id)
        self.log.info(
            "Undoing %s: %s %s with %s: %s", effect["key"], method, endpoint, self.idempotency_header, claim.key
        )
        response = hook.run(endpoint, data, headers, {**self.extra_options, "check_response": False})
        if response.status_code >= 400:
            # Retried: the request carries the compensation's key, so a provider that acted answers it again.
            raise AirflowException(
                f"Undoing {effect['key']!r}: {method} {endpoint} answered "
                f"{response.status_code} {response.reason}."
            )
        return summarize_response(response, self.stored_headers)

    def _call(self, context: Context, claim: IdempotencyClaim) -> Any:
        headers = {**self.headers, self.idempotency_header: claim.key}
        hook = self.hook
        self.log.info("Calling %s %s with %s: %s", self.method, self.endpoint, self.idempotency_header, claim.key)
        fallback = None
        if self.retry_args:
            response = hook.run_with_advanced_retry(
                self.retry_args, self.endpoint, self.data, headers, self.extra_options, **self.request_kwargs
            )
        elif self.fallback_http_conn_id:
            response, fallback = self._call_with_fallback(hook, headers, claim)
        else:
            response = hook.run(self.endpoint, self.data, headers, self.extra_options, **self.request_kwargs)
        if self.response_check or self.response_filter:
            try:
                processed = self.process_response(context=context, response=response)
            except Exception as exc:
                # The request was sent and answered: sending it again on a retry could repeat its effect.
                raise AirflowFailException(
                    f"{(self.method or '').upper()} {self.endpoint} answered {response.status_code} "
                    f"{response.reason}, so the request was sent and its effect may have happened, but "
                    f"response_check/response_filter failed ({type(exc).__name__}: {exc}). Idempotency key "
                    f"{claim.key!r} is marked failed without retry so that the request is not sent again: check "
                    f"the effect, then release the key (airflow integrity ledger release {claim.key!r} "
                    f"--namespace {claim.namespace!r} --reason ...) if it must be sent again."
                ) from exc
            if self.response_filter:
                return processed
        summary = summarize_response(response, self.stored_headers)
        if fallback is not None:
            summary["fallback"] = fallback
        return summary

    def _call_with_fallback(
        self, hook: Any, headers: dict[str, Any], claim: IdempotencyClaim
    ) -> tuple[Response, dict[str, str] | None]:
        """Send to the primary; only when it provably did nothing, to the fallback (audited); return the response
        and, when the fallback answered, which connection and why.

        Any answer that is neither a success nor 503, from either provider, may come from a provider that acted:
        the key is then failed without retry, so that no later try sends the request to the other provider."""
        unchecked = {**self.extra_options, "check_response": False}
        reason = self._send(hook, headers, unchecked, claim, None)
        if not isinstance(reason, str):
            return reason, None
        fallback_conn_id = str(self.fallback_http_conn_id)
        self.log.warning("Calling the fallback %r for key %r: %s", fallback_conn_id, claim.key, reason)
        self._record_fallback(claim, fallback_conn_id, reason)
        from airflow.sdk import BaseHook

        second = BaseHook.get_connection(fallback_conn_id).get_hook(
            hook_params={
                "method": self.method,
                "auth_type": self.auth_type,
                "tcp_keep_alive": self.tcp_keep_alive,
                "tcp_keep_alive_idle": self.tcp_keep_alive_idle,
                "tcp_keep_alive_count": self.tcp_keep_alive_count,
                "tcp_keep_alive_interval": self.tcp_keep_alive_interval,
            }
        )
        answer = self._send(second, headers, unchecked, claim, fallback_conn_id)
        if isinstance(answer, str):
            # Neither provider did anything: the task's retry may try again, from the primary.
            raise AirflowException(
                f"Neither provider took idempotency key {claim.key!r}: {reason}; then {answer}."
            )
        return answer, {"http_conn_id": fallback_conn_id, "reason": reason}

    def _send(
        self,
        hook: Any,
        headers: dict[str, Any],
        unchecked: dict[str, Any],
        claim: IdempotencyClaim,
        conn_id: str | None,
    ) -> Response | str:
        """Send through ``hook``: its successful response, or (text) why the provider provably did nothing; any
        other outcome fails the key without retry (``_maybe_sent``)."""
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import InvalidSchema, InvalidURL, MissingSchema, RequestException

        who = "the primary" if conn_id is None else f"the fallback {conn_id!r}"
        try:
            response = hook.run(self.endpoint, self.data, headers, unchecked, **self.request_kwargs)
        except (InvalidURL, InvalidSchema, MissingSchema):
            raise  # nothing was sent: the connection is misconfigured
        except RequestException as exc:
            if isinstance(exc, RequestsConnectionError) and nothing_sent(
                exc, hook.url_from_endpoint(self.endpoint)
            ):
                return f"{who} could not be reached: {type(exc).__name__}: {exc}"
            raise self._maybe_sent(claim, exc, conn_id) from exc
        if response.status_code == 503:
            return f"{who} answered 503 {response.reason} without accepting the request"
        if response.status_code >= 400:
            raise self._maybe_sent(claim, AirflowException(f"{response.status_code} {response.reason}"), conn_id)
        return response

    def _maybe_sent(
        self, claim: IdempotencyClaim, exc: Exception, conn_id: str | None = None
    ) -> AirflowFailException:
        where = f"the fallback {conn_id!r}" if conn_id else f"the primary {self.http_conn_id!r}"
        return AirflowFailException(
            f"{(self.method or '').upper()} {self.endpoint} to {where} may have been received before it failed "
            f"({type(exc).__name__}: {exc}), so it is neither sent again nor sent elsewhere. Idempotency key "
            f"{claim.key!r} is marked failed without retry: check with the provider whether the effect happened, "
            f"then release the key (airflow integrity ledger release {claim.key!r} --namespace "
            f"{claim.namespace!r} --reason ...) if it must be sent again."
        )

    def _record_fallback(self, claim: IdempotencyClaim, fallback_conn_id: str, reason: str) -> None:
        from airflow_integrity.hooks.events import build_event
        from airflow_integrity.hooks.integrity import IntegrityCheckHook

        IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id).record_event(
            build_event(
                "fallback.used",
                business_key=self.business_key or claim.key,
                details={
                    "namespace": claim.namespace,
                    "key": claim.key,
                    "fencing_token": claim.fencing_token,
                    "primary": self.http_conn_id,
                    "fallback": fallback_conn_id,
                    "reason": reason,
                },
            )
        )


def nothing_sent(exc: Exception, url: str | None = None) -> bool:
    """Whether a ``requests`` connection error happened before a connection existed (refused, unreachable, no
    name, connect timeout), for the request to ``url`` itself (not a redirect it was answered with): then the
    request was never sent."""
    from urllib3.exceptions import ConnectTimeoutError

    failed = getattr(getattr(exc, "request", None), "url", None)
    if url is not None and failed is not None and _bare(failed) != _bare(url):
        return False  # a redirect's target failed: the first provider answered, and may have acted
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", reason), ConnectTimeoutError)


def _bare(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
