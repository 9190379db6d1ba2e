"""Chaining soon what a process recorded and left unchained, even when the process then goes quiet.

``AuditLog.record`` (PostgreSQL) returns once an event is durable and leaves chaining to a batch: the next
multiple of the batch size, or the process's next event a second after it last chained. So that the last
events of a process that stops recording are not left unchained, a process keeps, per store it records to,
one daemon thread that chains them a given delay after they were recorded, and an exit handler that chains
them when the process exits normally (Airflow's task processes run the exit handlers registered after their
fork; a process started by ``multiprocessing`` runs it as a finalizer). A process killed within that delay
leaves its last events, durable, to the next chaining by anyone.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class PendingTail:
    """Chains what this process recorded unchained: ``delay`` seconds after :meth:`soon`, or at exit.

    Args:
        chain: Chains every pending event of the store (raises if it cannot).
        name: Names the store in log messages.
    """

    def __init__(self, chain: Callable[[], object], name: str) -> None:
        self._chain = chain
        self._name = name
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._due: float | None = None
        self._latest = 0.0  # when the latest unchained event was recorded (time.monotonic())
        self._thread: threading.Thread | None = None

    def soon(self, delay: float) -> None:
        """Events were recorded and not chained: chain them at most ``delay`` seconds from now."""
        now = time.monotonic()
        with self._lock:
            self._latest = now
            if self._due is not None and self._due <= now + delay:
                return
            self._due = now + delay
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="integrity-audit-chain", daemon=True)
                self._thread.start()
            self._changed.notify()

    def chained(self, started: float) -> None:
        """A chaining that began at ``started`` (``time.monotonic()``) succeeded: it took every event this
        process had recorded before then."""
        with self._lock:
            if self._due is not None and self._latest < started:
                self._due = None

    def flush(self) -> None:
        """Chain now if anything this process recorded may still wait."""
        with self._lock:
            if self._due is None:
                return
        started = time.monotonic()
        try:
            self._chain()
        except Exception as exc:
            # The events are durable; the next chaining by any process takes them.
            log.warning(
                "Audit events recorded in %s not chained yet (the next chaining will): %s", self._name, exc
            )
            with self._lock:
                if self._latest < started:
                    self._due = None
            return
        self.chained(started)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._due is None or self._due > time.monotonic():
                    self._changed.wait(None if self._due is None else self._due - time.monotonic())
            self.flush()


_tails: dict[str, PendingTail] = {}
_tails_lock = threading.Lock()
_exit_handler_pid: int | None = None


def pending_tail(key: str, chain: Callable[[], object], name: str) -> PendingTail:
    """This process's tail for the store ``key``, created (with its exit handler) on first use."""
    global _exit_handler_pid
    with _tails_lock:
        tail = _tails.get(key)
        if tail is None:
            tail = _tails[key] = PendingTail(chain, name)
        if _exit_handler_pid != os.getpid():
            # Registered per process: Airflow's task runner drops the handlers registered before its fork, and
            # a process started by multiprocessing runs its finalizers, not the exit handlers, when it ends.
            atexit.register(flush_all)
            multiprocessing.util.Finalize(None, flush_all, exitpriority=0)
            _exit_handler_pid = os.getpid()
        return tail


def existing_tail(key: str) -> PendingTail | None:
    """This process's tail for the store ``key``, if it recorded anything there."""
    with _tails_lock:
        return _tails.get(key)


def flush_all() -> None:
    """Chain, now, whatever this process recorded and left unchained (run at exit)."""
    with _tails_lock:
        tails = list(_tails.values())
    for tail in tails:
        tail.flush()


def _forget_after_fork() -> None:
    # The threads do not exist in the child, and a lock may have been held by one of them at the fork.
    global _tails_lock
    _tails_lock = threading.Lock()
    _tails.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
