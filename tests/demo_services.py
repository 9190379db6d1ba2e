"""The demo services of the example DAGs (``demo/services.py``), run for a test as `make run` runs them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

from tests.dag_runs import REPO_ROOT


@contextlib.contextmanager
def demo_services() -> Iterator[tuple[str, dict[str, str]]]:
    """Start the demo services in a process group of their own; yield their URL and the example DAGs'
    connections (``AIRFLOW_CONN_*``); always stop the group."""
    from demo.services import connections

    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.services"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        yield url, connections(url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def call(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST ``body`` (or GET without one) to the demo services; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
