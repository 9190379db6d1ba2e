"""The Integrity console in the Airflow UI: its built bundle, shipped in the package, and the plugin's
``react_apps`` entries that load it (a page in the navigation, a tab on DAG-run and task-instance pages).

The bundle is built from ``ui/`` (``npm run build``); CI rebuilds it and fails when the shipped file differs. It
is served by the plugin's app under ``/integrity/static/`` to authenticated users; its address carries a digest
of the served files, so a browser never runs a bundle cached from another version of the package.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATIC = Path(__file__).parent / "static"
BUNDLE = "console.js"
# The files the app serves, with their media types: nothing else under static/ is reachable.
SERVED = {BUNDLE: "text/javascript", "icon.svg": "image/svg+xml", "icon-dark.svg": "image/svg+xml"}
NAME = "Integrity"


@cache
def bundle_digest() -> str:
    """The first 16 hex digits of the SHA-256 of the files served (``missing`` when the bundle is not there)."""
    digest = hashlib.sha256()
    try:
        for name in sorted(SERVED):
            digest.update((STATIC / name).read_bytes())
    except FileNotFoundError:
        return "missing"
    return digest.hexdigest()[:16]


def root_path() -> str:
    """The path Airflow's UI and API are served under, derived from ``[api] base_url`` as Airflow derives it."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return urlsplit(base if base.endswith("/") else f"{base}/").path or "/"


def react_apps(url_prefix: str) -> list[dict[str, Any]]:
    """The console's entries for the Airflow UI.

    The bundle leaves its component on ``globalThis`` under :data:`NAME` and as ``AirflowPlugin``, which is what
    the UI's loader reads after importing it. Each entry still names its own address (``app=``): a loader that
    clears ``AirflowPlugin`` before each import and reads only that finds it set again, because a module is
    evaluated once per address.
    The addresses are absolute paths under Airflow's root path: Airflow 3.1's UI imports ``bundle_url`` as
    given (a relative one is not a module specifier there), later ones resolve it against the page's base URL.
    """
    static = f"{root_path()}{url_prefix.strip('/')}/static"

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
            icon=f"{static}/icon.svg?v={bundle_digest()}",
            icon_dark_mode=f"{static}/icon-dark.svg?v={bundle_digest()}",
        ),
        app("dag_run", "integrity-run"),
        app("task_instance", "integrity-task"),
    ]
