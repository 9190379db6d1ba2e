"""Programs of the system (Debian packages) that some tests drive: where one is missing its tests are skipped,
unless ``INTEGRITY_REQUIRE_TOOLS=1`` (set by CI), which turns the absence into a failure. ``make test`` installs
them with apt when it runs as root."""

from __future__ import annotations

import os
import shutil

import pytest


def system_program(name: str, *, override: str | None = None, package: str | None = None) -> str:
    """The path of program ``name`` (or of the environment variable ``override``'s value); skips (or fails,
    under CI) when there is none."""
    found = (os.environ.get(override) if override else None) or shutil.which(name)
    if found is None or not os.path.isfile(found):
        message = f"{name} not found: install Debian's {package or name} package (make test does, as root)."
        if os.environ.get("INTEGRITY_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found
