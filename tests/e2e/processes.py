"""Child processes of the e2e tests: started in sessions of their own, found again through /proc, always
reaped; and the small waiting and port helpers they need.

Every child gets its own session (and so its own process group) and carries a marker variable in its
environment. Teardown signals each group, then sweeps ``/proc`` for any process still in one of those sessions
or still carrying the marker: task runners put themselves into process groups of their own (so a group signal
does not reach them), and ``setproctitle`` overwrites the environment that /proc shows, so neither test alone
finds every process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

CLUSTER_MARKER_ENV = "E2E_AIRFLOW_CLUSTER_ID"
"""Environment variable set in every child process; its value identifies one cluster."""

POLL_INTERVAL = 0.5
KILL_WAIT_SECONDS = 5.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free when asked (the OS picks it by binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    describe: Callable[[], str],
    interval: float = POLL_INTERVAL,
) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns something other than ``None``.

    :raises TimeoutError: after ``timeout`` seconds, with ``describe()`` as the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(_safe_describe(describe))
        time.sleep(interval)


def _safe_describe(describe: Callable[[], str]) -> str:
    """``describe()``, or a note on why it failed: a broken diagnostic must not hide the timeout."""
    try:
        return describe()
    except Exception as exc:
        return f"<could not describe the state: {exc!r}>"


def tail_file(path: Path, lines: int, *, skip: str | None = None, window: int = 1 << 20) -> str:
    """Return the last ``lines`` lines of a text file (within its last ``window`` bytes).

    Lines containing ``skip`` are left out; a missing file gives a note instead.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - window))
            data = handle.read()
    except FileNotFoundError:
        return f"<{path} does not exist>"
    kept = [line for line in data.decode("utf-8", errors="replace").splitlines() if not skip or skip not in line]
    return "\n".join(kept[-lines:])


def processes_with_marker(marker_value: str) -> list[int]:
    """PIDs of live processes whose environment holds ``CLUSTER_MARKER_ENV=marker_value`` (Linux /proc)."""
    needle = f"{CLUSTER_MARKER_ENV}={marker_value}".encode()
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and not _is_zombie(entry):
            found.append(int(entry.name))
    return found


def processes_in_sessions(session_ids: Iterable[int]) -> list[int]:
    """PIDs of live processes that belong to one of ``session_ids`` (Linux /proc).

    Unlike the environment marker, the session survives ``setproctitle`` (which overwrites the
    environment block that /proc shows) and ``setpgid`` (task runners), though not ``setsid``.
    """
    wanted = set(session_ids) - {os.getsid(0)}
    proc = Path("/proc")
    if not wanted or not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        fields = _stat_fields(entry)
        if fields and int(fields[3]) in wanted and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _stat_fields(proc_entry: Path) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, session, ...)."""
    try:
        return (proc_entry / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _is_zombie(proc_entry: Path) -> bool:
    """Whether a /proc entry is a zombie (dead, only waiting to be reaped) or already gone."""
    fields = _stat_fields(proc_entry)
    return not fields or fields[0] in ("Z", "X")


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group, ignoring groups that are already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_process(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to one process, ignoring processes that are already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


@dataclass
class ManagedProcess:
    """One child process started in a new session, with its output going to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @classmethod
    def start(
        cls,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> ManagedProcess:
        """Start ``argv`` in its own session (so its own process group) with stdout+stderr to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log_file.close()
            raise
        return cls(name=name, popen=popen, log_path=log_path, log_file=log_file)

    @property
    def pid(self) -> int:
        """The PID of the child, which is also its process group id."""
        return self.popen.pid

    def is_running(self) -> bool:
        """Whether the child itself has not exited yet."""
        return self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's whole process group."""
        signal_group(self.pid, sig)

    def close(self) -> None:
        """Reap the child if it has exited and close the log file handle."""
        self.popen.poll()
        self.log_file.close()
