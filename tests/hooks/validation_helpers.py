"""Shared data, suites and store readers for the validation tests of hooks, operators, sensors and triggers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_integrity.store import IntegrityStore, StoreLocation

# p2's age is out of range (critical), p3's email has no "@" (warning only).
ROWS = [
    {"patient_id": "p1", "age": 34, "email": "ann@example.org"},
    {"patient_id": "p2", "age": 150, "email": "bob@example.org"},
    {"patient_id": "p3", "age": 51, "email": "no-mail"},
]
SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}},
    {
        "type": "expect_column_values_to_match_regex",
        "kwargs": {"column": "email", "regex": "@"},
        "severity": "warning",
    },
]
TABLE_LEVEL_SUITE = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 2}}]


def events(url: str, event_type: str | None = None) -> list[Any]:
    """The audit records of the store at ``url``, optionally of one type, in chain order."""
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    store = IntegrityStore(StoreLocation.from_url(url))
    AuditLog(store).chain_pending()  # as an export does: events recorded in the last second too
    found = [r for _, r in iter_records(store) if not isinstance(r, str)]
    store.engine.dispose()
    return [r for r in found if event_type is None or r.event_type == event_type]


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """A real HTTP server (``python -m http.server``) in its own process serving ``directory``; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the test HTTP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
