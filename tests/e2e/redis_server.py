"""Debian's ``redis-server`` as the Celery broker of the scale-out tests: on a free loopback port, in a session of
its own, without persistence (a restart loses what it held, as a broker without AOF does), always torn down."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from tests.e2e.processes import KILL_WAIT_SECONDS, ManagedProcess, free_port, poll_until, tail_file
from tests.tools import system_program


class RedisServer:
    """Context manager: a running ``redis-server``; :meth:`kill` and :meth:`start` restart it on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.program = system_program("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The broker URL for Celery."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = ManagedProcess.start(
            "redis", argv, env={}, cwd=self.workdir, log_path=self.workdir / "redis.log"
        )
        poll_until(
            self._answers,
            timeout=30,
            interval=0.1,
            describe=lambda: (
                f"redis-server did not answer on {self.port}\n{tail_file(self.workdir / 'redis.log', 20)}"
            ),
        )

    def _answers(self) -> bool | None:
        assert self._process is not None
        if not self._process.is_running():
            raise RuntimeError(f"redis-server exited\n{tail_file(self.workdir / 'redis.log', 20)}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return True if conn.recv(16).startswith(b"+PONG") else None
        except OSError:
            return None

    def kill(self) -> None:
        """SIGKILL the server (everything it held is lost)."""
        if self._process is None:
            return
        self._process.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.popen.wait(timeout=KILL_WAIT_SECONDS)
        self._process.close()
        self._process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
