"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for the console's end-to-end test.

Playwright's own browser download is never used: the browser is the system's ``chromium`` (or
``INTEGRITY_CHROMIUM``), started with a fresh profile and without the background services that would reach out
to the network. Where it is missing the test is skipped, or fails under CI (:mod:`tests.tools`).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from tests.tools import system_program

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def chromium_path() -> str:
    """The Chromium to drive (skips, or fails under CI, if there is none)."""
    return system_program("chromium", override="INTEGRITY_CHROMIUM")


def _kill_browsers_of(profile: Path) -> None:
    """Kill what is left of a Chromium that used ``profile`` (a crashed driver can leave it running)."""
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(profile) in part for part in proc.info["cmdline"] or ()):
                proc.send_signal(signal.SIGKILL)


@contextlib.contextmanager
def browser_page(profile: Path, *, color_scheme: str = "light", **context: Any) -> Iterator[Any]:
    """A page in a new headless Chromium with its own profile folder; the browser is always torn down."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": 1440, "height": 900},
            color_scheme=color_scheme,  # type: ignore[arg-type]
            accept_downloads=True,
            **context,
        )
        try:
            yield browser.pages[0] if browser.pages else browser.new_page()
        finally:
            with contextlib.suppress(Exception):
                browser.close()
            _kill_browsers_of(profile)
