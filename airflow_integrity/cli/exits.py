"""How a command ends on bad input: the message on standard error and exit code 2 (1 is each command's "found
something": a breached budget, a lint finding, a failed qualification)."""

from __future__ import annotations

import sys
from typing import NoReturn


def usage_error(message: str) -> NoReturn:
    """Print ``error: message`` to standard error and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
