"""A small payments API for the tests, run as a separate process: ``python -m tests.http_payments``.

``POST /payments`` pays once per ``Idempotency-Key`` header: the first request with a key creates a payment
(201); a repeated key gets the same payment back (200) without paying again, and a request without the header
is refused (400). ``POST /refunds`` with ``{"payment_id": ...}`` refunds a payment the same way, once per key
(404 for a payment it never made). Any path under ``/down/`` answers 503 Service Unavailable and does nothing;
under ``/fail-after/`` it does what it is asked and answers 500.
``GET /stats`` reports every request, how many payments each key created and the refunds in the order they were
made, so tests can count effects where they happen. Each request record names the process that sent it when
the request carries an ``X-Task-Pid`` header.

A test can make the service act and then go silent: after ``POST /control/hold`` with ``{"key": ..., "seconds":
...}``, the request that creates the payment for that key is not answered until ``POST /control/release`` with
``{"key": ...}`` or until the seconds have passed, while other requests (a retry with the same key, ``/stats``)
are answered meanwhile. One thread per request (``http.server.ThreadingHTTPServer``); prints its port on start.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PID_HEADER = "X-Task-Pid"
DEFAULT_HOLD_SECONDS = 300.0

_LOCK = threading.Lock()
_PAYMENTS: dict[str, dict[str, Any]] = {}
_CREATED: dict[str, int] = {}
# Refunds by idempotency key, and the payment ids refunded in the order the refunds were made.
_REFUNDS: dict[str, dict[str, Any]] = {}
_REFUNDED: list[str] = []
_REQUESTS: list[dict[str, Any]] = []
# Keys whose creating request is to be held: key -> the longest hold, in seconds.
_HOLDS: dict[str, float] = {}
# Keys whose creating request is held right now: key -> set to answer it.
_RELEASES: dict[str, threading.Event] = {}


def _paid(body: Any) -> bool:
    """Whether a refund request names a payment this service made (call with the lock held)."""
    wanted = body.get("payment_id") if isinstance(body, dict) else None
    return any(p["payment_id"] == wanted for p in _PAYMENTS.values())


def _task_pid(value: str | None) -> int | None:
    """The process id a request announced in its ``X-Task-Pid`` header, if it is a number."""
    return int(value) if value and value.strip().isdigit() else None


class _Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        raw = self._body()
        if self.path.startswith("/control/"):
            return self._control(raw)
        key = self.headers.get("Idempotency-Key")
        record: dict[str, Any] = {
            "path": self.path,
            "key": key,
            "body": raw.decode(),
            "task_pid": _task_pid(self.headers.get(PID_HEADER)),
            "status": None,
            "held": False,
        }
        with _LOCK:
            _REQUESTS.append(record)
        if self.path.startswith("/down/"):
            return self._answer(record, 503, {"error": "service unavailable, nothing done"})
        # Under /fail-after/ the service acts, then answers 500 as if it had not.
        path = self.path.removeprefix("/fail-after")
        failing = path != self.path
        if path not in ("/payments", "/refunds"):
            return self._answer(record, 404, {"error": f"no such endpoint {self.path}"})
        if not key:
            return self._answer(record, 400, {"error": "the Idempotency-Key header is required"})
        body = json.loads(raw or b"null")
        release = threading.Event()
        with _LOCK:
            made = _PAYMENTS if path == "/payments" else _REFUNDS
            if key in made:
                thing, hold_for = made[key], None
                created = False
            elif path == "/refunds" and not _paid(body):
                return self._answer(record, 404, {"error": f"no payment {body!r} to refund"})
            else:
                if path == "/payments":
                    thing = {"payment_id": f"pay-{len(_PAYMENTS) + 1}", "request": body}
                    _CREATED[key] = _CREATED.get(key, 0) + 1
                else:
                    thing = {"refund_id": f"ref-{len(_REFUNDS) + 1}", "payment_id": body["payment_id"]}
                    _REFUNDED.append(body["payment_id"])
                made[key] = thing
                created = True
                hold_for = _HOLDS.pop(key, None)
                if hold_for is not None:
                    _RELEASES[key] = release
                    record["held"] = True
        if not created:
            return self._answer(record, 200, thing, {"Idempotent-Replayed": "true"})
        if hold_for is not None:
            # The payment (refund) exists; the caller hears nothing until released (or the hold runs out).
            release.wait(hold_for)
            with _LOCK:
                _RELEASES.pop(key, None)
        if failing:
            return self._answer(record, 500, {"error": "internal error (the request was carried out)"})
        location = f"/payments/{thing['payment_id']}" if path == "/payments" else f"/refunds/{thing['refund_id']}"
        self._answer(record, 201, thing, {"Location": location})

    def _answer(
        self, record: dict[str, Any], status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Reply and note the status; a caller that is gone by then (a killed client) is not an error."""
        with _LOCK:
            record["status"] = status
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._reply(status, body, headers)

    def _control(self, raw: bytes) -> None:
        try:
            command = json.loads(raw or b"{}")
            key = str(command["key"])
            seconds = float(command.get("seconds", DEFAULT_HOLD_SECONDS))
        except (ValueError, KeyError, TypeError) as exc:
            return self._reply(400, {"error": f"expected a JSON body with a 'key' ({exc!r})"})
        with _LOCK:
            if self.path == "/control/hold":
                _HOLDS[key] = seconds
                return self._reply(200, {"holding": key, "seconds": seconds})
            if self.path == "/control/release":
                _HOLDS.pop(key, None)
                release = _RELEASES.get(key)
                if release is not None:
                    release.set()
                return self._reply(200, {"released": key, "was_held": release is not None})
        self._reply(404, {"error": f"no such endpoint {self.path}"})

    def do_GET(self) -> None:
        if self.path != "/stats":
            return self._reply(404, {"error": f"no such endpoint {self.path}"})
        with _LOCK:
            stats = copy.deepcopy(
                {
                    "payments": len(_PAYMENTS),
                    "created_by_key": _CREATED,
                    "payment_of_key": {key: payment["payment_id"] for key, payment in _PAYMENTS.items()},
                    "refunded": _REFUNDED,
                    "refunds_by_key": {key: refund["payment_id"] for key, refund in _REFUNDS.items()},
                    "requests": _REQUESTS,
                    "held": sorted(_RELEASES),
                }
            )
        self._reply(200, stats)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    """Serve on a free loopback port until terminated."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


@dataclass(frozen=True)
class PaymentsService:
    """A running payments service."""

    url: str
    process: subprocess.Popen

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """What the service has seen and done."""
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            return json.loads(response.read())

    def hold(self, key: str, seconds: float = DEFAULT_HOLD_SECONDS) -> None:
        """Create the payment of the next new ``key``, then leave that request unanswered for up to ``seconds``."""
        self._post("/control/hold", {"key": key, "seconds": seconds})

    def release(self, key: str) -> bool:
        """Answer the held request of ``key`` now (and hold no later one); whether one was held."""
        return bool(self._post("/control/release", {"key": key})["was_held"])

    def wait_for_held(self, key: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until a request for ``key`` is held; return its record (``task_pid`` names the sender)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if key in stats["held"]:
                return next(r for r in stats["requests"] if r["key"] == key and r["held"])
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no request for {key!r} was held within {timeout}s: {stats}")
            time.sleep(0.2)


@contextlib.contextmanager
def payments_service() -> Iterator[PaymentsService]:
    """Start the service in a process group of its own; always stop the whole group on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.http_payments"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield PaymentsService(f"http://127.0.0.1:{port}", proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()
