"""The Integrity console in the Airflow UI: its built bundle, shipped in the package, and the plugin's
``react_apps`` entries that load it (a page in the navigation, a tab on DAG-run and task-instance pages).

The bundle is built from ``ui/`` (``npm run build``); CI rebuilds it and fails when the shipped file differs. It
is served by the plugin's app under ``/integrity/static/`` to authenticated users; its address carries a digest
of its content, so a browser never runs a bundle cached from another version of the package.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
BUNDLE = "console.js"
# The files the app serves, with their media types: nothing else under static/ is reachable.
SERVED = {BUNDLE: "text/javascript", "icon.svg": "image/svg+xml", "icon-dark.svg": "image/svg+xml"}
NAME = "Integrity"


@cache
def bundle_digest() -> str:
    """The first 16 hex digits of the bundle's SHA-256 (``missing`` when the package was built without it)."""
    try:
        return hashlib.sha256((STATIC / BUNDLE).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return "missing"


def react_apps(url_prefix: str) -> list[dict[str, Any]]:
    """The console's entries for the Airflow UI.

    Each entry names its own bundle address (``app=``): the UI imports the bundle once per address and reads
    the component the module leaves on ``globalThis``, so distinct addresses work with every 3.1+ UI's loader.
    The addresses are relative: the UI resolves them against its base URL, as it does its own API calls.
    """
    static = f"{url_prefix.strip('/')}/static"

    def app(destination: str, url_route: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": NAME,
            "bundle_url": f"{static}/{BUNDLE}?v={bundle_digest()}&app={url_route}",
            "destination": destination,
            "url_route": url_route,
            **extra,
        }

    return [
        app(
            "nav",
            "integrity",
            category="browse",
            icon=f"{static}/icon.svg",
            icon_dark_mode=f"{static}/icon-dark.svg",
        ),
        app("dag_run", "integrity-run"),
        app("task_instance", "integrity-task"),
    ]
