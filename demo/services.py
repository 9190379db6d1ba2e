"""DEMO ONLY: stand-ins for the outside systems the example DAGs call, so that `make run` works out of the box.

One small HTTP server (standard library, in memory, loopback only) plays seven systems, each under its own path:

    /payments   POST /payments {claim_id, amount}            -> {payment_id}      POST /refunds {payment_id}
    /erp        POST /invoices {invoice_id, amount, ...}     -> {posting_id}      POST /credit-notes {posting_id}
    /bureau-a   POST /checks {subject, amount}               -> {score, bureau}   (the primary credit bureau)
    /bureau-b   POST /checks {subject, amount}               -> {score, bureau}   (the fallback bureau)
    /lender     POST /reservations {application_id, amount}  -> {reservation_id}
                POST /releases {reservation_id}, POST /disbursements {application_id, amount, reservation_id}
    /payer          POST /eligibility {mrns: [...]}          -> {results: [{mrn, coverage, copay}], checked_by}
    /clearinghouse  POST /eligibility {mrns: [...]}          -> the same, through a clearinghouse (the fallback)

Every POST needs an ``Idempotency-Key`` header and acts once per key: a repeated key gets the first answer back
(200, ``Idempotent-Replayed: true``). ``POST /control/down {"system": "bureau-a", "down": true}`` makes a
system answer 503 (doing nothing); ``GET /stats`` counts what each system did. Real systems replace all of this:
point the connections (``connections(url)`` below) at them.

Run: ``python -m demo.services [--port N] [--env-file PATH]``: prints its URL; with ``--env-file`` it also
writes the ``AIRFLOW_CONN_*`` lines of the example DAGs' connections. It exits when its parent process does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# connection id -> the system (path prefix) it reaches.
CONNECTIONS = {
    "payments_api": "payments",
    "erp_api": "erp",
    "credit_bureau_api": "bureau-a",
    "credit_bureau_fallback_api": "bureau-b",
    "lender_api": "lender",
    "payer_eligibility_api": "payer",
    "eligibility_clearinghouse_api": "clearinghouse",
}
# The payer's policies by medical record number: (coverage, copay). Anyone else is "unknown".
_POLICIES = {"MRN-100001": ("active", 20), "MRN-100002": ("expired", 0), "MRN-100004": ("active", 35)}

_LOCK = threading.Lock()
_DONE: dict[tuple[str, str], dict[str, Any]] = {}  # (system/action, key) -> first answer
_COUNTS: dict[str, int] = {}
_DOWN: set[str] = set()


def connections(url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` values of the example DAGs' connections for the demo server at ``url``."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "http", "host": f"{url}/{system}"})
        for conn_id, system in CONNECTIONS.items()
    }


def _ident(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _act(system: str, action: str, key: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """What the system does for a new request (``None``: not a known action)."""
    if system == "payments" and action == "payments":
        return {"payment_id": _ident("pay", key), "amount": body.get("amount")}
    if system == "payments" and action == "refunds":
        return {"refund_id": _ident("ref", key), "payment_id": body.get("payment_id")}
    if system == "erp" and action == "invoices":
        return {"posting_id": _ident("post", key), "invoice_id": body.get("invoice_id")}
    if system == "erp" and action == "credit-notes":
        return {"credit_note_id": _ident("cn", key), "posting_id": body.get("posting_id")}
    if system in ("bureau-a", "bureau-b") and action == "checks":
        subject = str(body.get("subject", ""))
        score = 300 + int(hashlib.sha256(subject.encode()).hexdigest(), 16) % 550
        return {"check_id": _ident("chk", key), "score": score, "bureau": system}
    if system == "lender" and action == "reservations":
        return {"reservation_id": _ident("res", key), "amount": body.get("amount")}
    if system == "lender" and action == "releases":
        return {"release_id": _ident("rel", key), "reservation_id": body.get("reservation_id")}
    if system == "lender" and action == "disbursements":
        return {"disbursement_id": _ident("dis", key), "amount": body.get("amount")}
    if system in ("payer", "clearinghouse") and action == "eligibility":
        mrns = [str(mrn) for mrn in body.get("mrns") or []]
        policies = {mrn: _POLICIES.get(mrn, ("unknown", 0)) for mrn in mrns}
        results = [{"mrn": mrn, "coverage": cover, "copay": copay} for mrn, (cover, copay) in policies.items()]
        return {"inquiry_id": _ident("elig", key), "results": results, "checked_by": system}
    return None


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
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > 1_000_000:
            return self._reply(400, {"error": "Content-Length must be a number of bytes up to 1,000,000"})
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._reply(400, {"error": "the body must be JSON"})
        if not isinstance(body, dict):
            return self._reply(400, {"error": "the body must be a JSON object"})
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["control", "down"]:
            with _LOCK:
                (_DOWN.add if body.get("down") else _DOWN.discard)(str(body.get("system")))
            return self._reply(200, {"down": sorted(_DOWN)})
        if len(parts) != 2:
            return self._reply(404, {"error": f"no such endpoint {self.path}"})
        system, action = parts
        key = self.headers.get("Idempotency-Key")
        if not key:
            return self._reply(400, {"error": "the Idempotency-Key header is required"})
        with _LOCK:
            if system in _DOWN:
                return self._reply(503, {"error": f"{system} is down; nothing was done"})
            done = _DONE.get((self.path, key))
            if done is None:
                done = _act(system, action, key, body)
                if done is None:
                    return self._reply(404, {"error": f"no such endpoint {self.path}"})
                _DONE[(self.path, key)] = done
                _COUNTS[self.path] = _COUNTS.get(self.path, 0) + 1
                return self._reply(201, done)
        self._reply(200, done, {"Idempotent-Replayed": "true"})

    def do_GET(self) -> None:
        if self.path != "/stats":
            return self._reply(404, {"error": f"no such endpoint {self.path}"})
        with _LOCK:
            self._reply(200, {"done": dict(_COUNTS), "down": sorted(_DOWN)})

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    parser.add_argument("--env-file", help="write the example DAGs' AIRFLOW_CONN_* lines here")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    if args.env_file:
        with open(args.env_file, "w", encoding="utf-8") as fh:
            for name, value in connections(url).items():
                fh.write(f"export {name}={shlex.quote(value)}\n")
    print(url, flush=True)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
