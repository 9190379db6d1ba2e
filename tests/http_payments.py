"""A small payments API for the tests, run as a separate process: ``python -m tests.http_payments``.

``POST /payments`` pays once per ``Idempotency-Key`` header: the first request with a key creates a payment
(201); a repeated key gets the same payment back (200) without paying again, and a request without the header
is refused (400). ``GET /stats`` reports every request and how many payments each key created, so tests can
count effects where they happen. Single-threaded (``http.server.HTTPServer``); prints its port on start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

_PAYMENTS: dict[str, dict[str, Any]] = {}
_CREATED: dict[str, int] = {}
_REQUESTS: list[dict[str, Any]] = []


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

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Idempotency-Key")
        _REQUESTS.append({"path": self.path, "key": key, "body": raw.decode()})
        if self.path != "/payments":
            return self._reply(404, {"error": f"no such endpoint {self.path}"})
        if not key:
            return self._reply(400, {"error": "the Idempotency-Key header is required"})
        if key in _PAYMENTS:
            return self._reply(200, _PAYMENTS[key], {"Idempotent-Replayed": "true"})
        payment = {"payment_id": f"pay-{len(_PAYMENTS) + 1}", "request": json.loads(raw or b"null")}
        _PAYMENTS[key] = payment
        _CREATED[key] = _CREATED.get(key, 0) + 1
        self._reply(201, payment, {"Location": f"/payments/{payment['payment_id']}"})

    def do_GET(self) -> None:
        if self.path != "/stats":
            return self._reply(404, {"error": f"no such endpoint {self.path}"})
        self._reply(200, {"payments": len(_PAYMENTS), "created_by_key": _CREATED, "requests": _REQUESTS})

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    """Serve on a free loopback port until terminated."""
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


@dataclass(frozen=True)
class PaymentsService:
    """A running payments service."""

    url: str
    process: subprocess.Popen

    def stats(self) -> dict[str, Any]:
        """What the service has seen and done."""
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            return json.loads(response.read())


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
