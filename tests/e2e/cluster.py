"""A real Airflow 3 cluster for the e2e tests: API server, scheduler, DAG processor and triggerer in a temporary
``AIRFLOW_HOME`` (the LocalExecutor), or with Celery workers of their own homes and host names, configured only
through ``AIRFLOW__SECTION__KEY`` variables, always torn down.

The cluster never imports Airflow itself: every Airflow process is a child started with ``python -m airflow``,
so the caller's own Airflow home and configuration are never touched.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.e2e.processes import (
    CLUSTER_MARKER_ENV,
    KILL_WAIT_SECONDS,
    ManagedProcess,
    free_port,
    poll_until,
    processes_in_sessions,
    processes_with_marker,
    signal_group,
    signal_process,
    tail_file,
)
from tests.e2e.rest import ClusterRest, _raise_for_status

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "e2e-admin-password"
HEALTHY_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = tomllib.loads((REPO / "deploy" / "topology.toml").read_text(encoding="utf-8"))
# Log servers are skipped: the harness reads logs from local files.
_HARNESS_FLAGS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
COMPONENT_COMMANDS: dict[str, tuple[str, ...]] = {
    name: (*component["command"], *_HARNESS_FLAGS.get(name, ()))
    for name, component in TOPOLOGY["components"].items()
    if name != "celery-worker"  # started per worker name (start_worker), with WORKER_COMMAND
}
"""The long-running components, in start order, as deploy/topology.toml (and so docker-compose.yaml) runs them."""

WORKER_COMMAND: tuple[str, ...] = tuple(TOPOLOGY["components"]["celery-worker"]["command"])
# Two task slots a worker; no log server (the harness reads log files); no start-up chatter between workers.
_WORKER_FLAGS = ("--concurrency", "2", "--skip-serve-logs", "--without-mingle", "--without-gossip")
# Each Celery worker records its own name as the hostname of the tries it runs (Airflow's [core]
# hostname_callable, called by the task's supervisor in every heartbeat): a module the harness writes.
_HOSTNAME_MODULE = "e2e_worker_hostname"
_HOSTNAME_ENV = "E2E_WORKER_HOSTNAME"
_HOSTNAME_SOURCE = f"""import os
import socket


def hostname():
    return os.environ.get("{_HOSTNAME_ENV}") or socket.gethostname()
"""

TERM_GRACE_SECONDS = 5.0


def to_sqlalchemy_uri(uri: str) -> str:
    """Turn a libpq URI (``postgresql://`` or ``postgres://``) into one for SQLAlchemy's psycopg 3 driver.

    URIs that already name a driver (``postgresql+...://``) or another database are returned unchanged.
    """
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return uri


def _airflow_has_bytecode(python: str) -> bool:
    """Whether the Airflow that ``python`` runs ships compiled bytecode next to its sources.

    Only answerable for the current interpreter (without importing Airflow); other interpreters
    count as having none.
    """
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        return False
    spec = importlib.util.find_spec("airflow")
    if spec is None or spec.origin is None:
        return False
    return Path(importlib.util.cache_from_source(spec.origin)).exists()


def _merge_no_proxy(existing: str | None) -> str:
    """Return a ``NO_PROXY`` value that keeps loopback traffic away from any configured HTTP proxy."""
    hosts = [h for h in (existing or "").split(",") if h]
    for host in ("127.0.0.1", "localhost"):
        if host not in hosts:
            hosts.append(host)
    return ",".join(hosts)


class AirflowCluster(ClusterRest):
    """Context manager. Starts api-server, scheduler, dag-processor and triggerer in a temporary AIRFLOW_HOME.

    ``__enter__`` runs ``airflow db migrate``, starts the components and waits until
    ``/api/v2/monitor/health`` reports every component healthy. ``__exit__`` always tears down;
    teardown also runs if startup fails, and an ``atexit`` hook is a last resort.

    :param home: empty or non-existing directory used as ``AIRFLOW_HOME``.
    :param dags_folder: directory with the DAG files.
    :param metadata_db_uri: PostgreSQL URI of an empty database (libpq ``postgresql://`` or
        ``postgresql+psycopg://``); it is used with SQLAlchemy's psycopg 3 driver.
    :param env: extra environment variables for every Airflow process (e.g. ``AIRFLOW_CONN_*``);
        they are applied last, so they may override the harness defaults. The caller's own
        ``AIRFLOW*`` variables are *not* inherited (so the cluster never sees the test process's
        Airflow home or connections): pass whatever the cluster needs here.
    :param python: interpreter that runs ``python -m airflow``; defaults to the current one.
    :param startup_timeout: seconds allowed for ``db migrate`` and, separately, for the components
        to become healthy.
    :param term_grace: seconds between SIGTERM and SIGKILL at teardown.
    :param celery_workers: names of Celery workers to start (the CeleryExecutor, with ``broker_url``); each
        runs in an ``AIRFLOW_HOME`` and log folder of its own under ``home/workers/<name>`` and records its
        name as the hostname of the tries it runs, as workers on separate machines would.
    :param broker_url: the Celery broker (``redis://...``); results go to the metadata database.
    :param pycache_dir: where the children write bytecode when the environment sets
        ``PYTHONDONTWRITEBYTECODE`` and Airflow is installed without compiled bytecode: that
        variable is then replaced by ``PYTHONPYCACHEPREFIX``, because compiling Airflow's modules
        again in every process roughly doubles its start time. Share one directory between
        clusters to compile only once; defaults to ``home/pycache``.
    """

    def __init__(
        self,
        *,
        home: Path,
        dags_folder: Path,
        metadata_db_uri: str,
        env: dict[str, str] | None = None,
        python: str | None = None,
        startup_timeout: float = 180.0,
        term_grace: float = TERM_GRACE_SECONDS,
        pycache_dir: Path | None = None,
        celery_workers: tuple[str, ...] = (),
        broker_url: str | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        if bool(celery_workers) != bool(broker_url):
            raise ValueError("celery_workers and broker_url go together (the CeleryExecutor needs both)")
        self.celery_workers = celery_workers
        self.broker_url = broker_url
        self._worker_overrides: dict[str, dict[str, str]] = {}
        self.dags_folder = Path(dags_folder).resolve()
        self.metadata_db_uri = to_sqlalchemy_uri(metadata_db_uri)
        # INTEGRITY_E2E_AIRFLOW_PYTHON runs the cluster on another installation (another Airflow version).
        self.python = python or os.environ.get("INTEGRITY_E2E_AIRFLOW_PYTHON") or sys.executable
        self.startup_timeout = startup_timeout
        self.term_grace = term_grace
        self.pycache_dir = Path(pycache_dir).resolve() if pycache_dir else self.home / "pycache"
        self.username = DEFAULT_USERNAME
        self.password = DEFAULT_PASSWORD
        self.cluster_id = uuid.uuid4().hex
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self._log_server_ports = (free_port(), free_port())
        self._secrets = {
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        }
        self.timings: dict[str, float] = {}
        self._extra_env = dict(env or {})
        self.env = self._build_env()
        self._processes: list[ManagedProcess] = []
        self._session_ids: set[int] = set()
        self._client: httpx.Client | None = None
        self._cached_token: str | None = None
        self._stopped = False

    # ---------------------------------------------------------------------------------- config --

    @property
    def component_log_dir(self) -> Path:
        """Directory holding one ``<component>.log`` per started component."""
        return self.home / "component-logs"

    @property
    def passwords_file(self) -> Path:
        """The SimpleAuthManager passwords file, pre-written with a known password."""
        return self.home / "simple_auth_manager_passwords.json"

    def airflow_config(self) -> dict[str, str]:
        """The ``AIRFLOW__SECTION__KEY`` settings every component runs with."""
        execution_api = f"{self.base_url}/execution/"
        return {
            # Isolation: everything lives under the temporary home.
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.home / "plugins"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.home / "dag_bundles"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Metadata database: psycopg 3 for both the sync and the async engine (asyncpg is absent).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_db_uri,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.metadata_db_uri,
            # Execution.
            **self._executor_config(),
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": execution_api,
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # API server on a free loopback port.
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._log_server_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._log_server_ports[1]),
            # Secrets shared by all components (tokens signed by one are checked by another).
            **self._secrets,
            # Authentication: SimpleAuthManager with one admin whose password is pre-written.
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            # Fast parsing and scheduling so that DAGs and runs show up within seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # Readable logs.
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        }

    def _executor_config(self) -> dict[str, str]:
        """The LocalExecutor, or the CeleryExecutor on ``broker_url`` with each worker naming its own host."""
        if not self.celery_workers:
            return {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
            }
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": str(self.broker_url),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.metadata_db_uri}",
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "5",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{_HOSTNAME_MODULE}.hostname",
            # As docker-compose.yaml: workers load the task modules and GX once, before their pools fork.
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_integrity.executors.celery.CELERY_CONFIG",
        }

    def worker_home(self, name: str) -> Path:
        """The ``AIRFLOW_HOME`` of Celery worker ``name`` (its logs, spool and bundles are under it; the plugins
        folder is the cluster's, as an image's would be)."""
        return self.home / "workers" / name

    def _worker_env(self, name: str) -> dict[str, str]:
        home = self.worker_home(name)
        return {
            **self.env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "dag_bundles"),
            _HOSTNAME_ENV: name,
            **self._worker_overrides.get(name, {}),
        }

    def _build_env(self) -> dict[str, str]:
        """The child environment: the caller's, minus any Airflow settings, plus the cluster's."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        python_bin = str(Path(self.python).parent)
        env["PATH"] = os.pathsep.join([python_bin, env.get("PATH", os.defpath)])
        env["NO_PROXY"] = env["no_proxy"] = _merge_no_proxy(env.get("NO_PROXY") or env.get("no_proxy"))
        env["PYTHONUNBUFFERED"] = "1"
        if self.celery_workers:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self._pylib), env.get("PYTHONPATH")) if p)
        if "PYTHONDONTWRITEBYTECODE" in env and not _airflow_has_bytecode(self.python):
            del env["PYTHONDONTWRITEBYTECODE"]
            env.setdefault("PYTHONPYCACHEPREFIX", str(self.pycache_dir))
        env["AIRFLOW_HOME"] = str(self.home)
        env["AIRFLOW_CONFIG"] = str(self.home / "airflow.cfg")
        env[CLUSTER_MARKER_ENV] = self.cluster_id
        env.update(self.airflow_config())
        env.update(self._extra_env)
        return env

    def _prepare_home(self) -> None:
        """Create the home directories and the passwords file with the known password."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.component_log_dir.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps({self.username: self.password}) + "\n")
        if self.celery_workers:
            self._pylib.mkdir(exist_ok=True)
            (self._pylib / f"{_HOSTNAME_MODULE}.py").write_text(_HOSTNAME_SOURCE)
            for name in self.celery_workers:
                self.worker_home(name).mkdir(parents=True, exist_ok=True)

    @property
    def _pylib(self) -> Path:
        return self.home / "pylib"

    # ------------------------------------------------------------------------------- lifecycle --

    def __enter__(self) -> AirflowCluster:
        """Migrate the database, start the components and wait until the API reports them healthy."""
        if self._stopped or self._processes:
            raise RuntimeError("an AirflowCluster can be started only once")
        atexit.register(self.stop)
        try:
            self._prepare_home()
            self._timed("migrate", self._migrate_db)
            self._timed("start_until_healthy", self._start_components)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Tear the cluster down, whatever happened inside the block."""
        self.stop()

    def _timed(self, name: str, step: Callable[[], None]) -> None:
        """Run ``step`` and record its duration in seconds in ``self.timings[name]``."""
        started = time.monotonic()
        try:
            step()
        finally:
            self.timings[name] = time.monotonic() - started

    def _migrate_db(self) -> None:
        """Run ``airflow db migrate`` against the (empty) metadata database."""
        result = self.airflow_cli("db", "migrate", timeout=self.startup_timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"`airflow db migrate` failed with exit code {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )

    def _start_components(self) -> None:
        """Start every component, then wait until all of them are healthy."""
        for name, command in COMPONENT_COMMANDS.items():
            process = ManagedProcess.start(
                name,
                [self.python, "-m", "airflow", *command],
                env=self.env,
                cwd=self.home,
                log_path=self.component_log_dir / f"{name}.log",
            )
            self._processes.append(process)
            self._session_ids.add(process.pid)
        self._wait_until_healthy(self.startup_timeout)
        for name in self.celery_workers:
            self.start_worker(name)

    def start_worker(self, name: str, timeout: float | None = None, env: Mapping[str, str] | None = None) -> None:
        """Start Celery worker ``name`` (again, after :meth:`kill_worker`; ``env`` overrides its environment from
        then on) and wait until it is ready."""
        self._worker_overrides.setdefault(name, {}).update(env or {})
        log_path = self.component_log_dir / f"worker-{name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        process = ManagedProcess.start(
            f"worker-{name}",
            [self.python, "-m", "airflow", *WORKER_COMMAND, "--celery-hostname", name, *_WORKER_FLAGS],
            env=self._worker_env(name),
            cwd=self.worker_home(name),
            log_path=log_path,
        )
        self._processes.append(process)
        self._session_ids.add(process.pid)

        def ready() -> bool | None:
            self._raise_if_component_died()
            with log_path.open("rb") as handle:
                handle.seek(offset)
                return True if f"celery@{name} ready.".encode() in handle.read() else None

        limit = timeout or self.startup_timeout
        poll_until(
            ready,
            timeout=limit,
            describe=lambda: f"worker {name} not ready in {limit}s\n{tail_file(log_path, 40)}",
        )

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL every process of Celery worker ``name``: the worker, its pool and the task processes it runs
        (they are in its session, in process groups of their own); return their PIDs."""
        process = self._worker(name)
        pids = processes_in_sessions({process.pid})
        for pid in pids:
            signal_process(pid, signal.SIGKILL)
        poll_until(
            lambda: None if processes_in_sessions({process.pid}) else True,
            timeout=KILL_WAIT_SECONDS,
            interval=0.1,
            describe=lambda: f"processes of worker {name} survived SIGKILL",
        )
        process.popen.wait(timeout=KILL_WAIT_SECONDS)
        self._processes.remove(process)
        process.close()
        return pids

    def worker_processes(self, name: str) -> list[int]:
        """PIDs of the live processes of Celery worker ``name`` (the worker, its pool, task processes)."""
        return processes_in_sessions({self._worker(name).pid})

    def _worker(self, name: str) -> ManagedProcess:
        running = [p for p in self._processes if p.name == f"worker-{name}" and p.is_running()]
        if not running:
            raise LookupError(f"worker {name} is not running")
        return running[-1]

    @property
    def component_pids(self) -> dict[str, int]:
        """PID of each started component (each is the leader of its own session and process group)."""
        return {process.name: process.pid for process in self._processes}

    def _wait_until_healthy(self, timeout: float) -> None:
        """Poll ``/api/v2/monitor/health`` until every component is healthy; fail fast if one exits.

        Then warm the Execution API up (see :meth:`_warm_up_execution_api`).
        """

        def probe() -> bool | None:
            self._raise_if_component_died()
            health = self._health()
            if health and all(self._component_status(health, name) == "healthy" for name in HEALTHY_COMPONENTS):
                return True
            return None

        poll_until(
            probe,
            timeout=timeout,
            describe=lambda: f"Airflow did not become healthy in {timeout}s: {self._health()}\n{self.logs_tail()}",
        )
        self._warm_up_execution_api(timeout)

    def _warm_up_execution_api(self, timeout: float) -> None:
        """Call ``/execution/health`` once, so the first task does not pay for the Execution API's setup.

        The Execution API builds its versioned routes on its first request, which takes several seconds
        on a small machine and blocks the API server meanwhile; a task's first call would otherwise hit
        the workers' HTTP timeout and be retried.
        """
        response = self.client.get("/execution/health", timeout=timeout)
        _raise_for_status(response, expected=(200,))

    @staticmethod
    def _component_status(health: Mapping[str, Any], name: str) -> str | None:
        """The ``status`` of one component in a health response."""
        info = health.get(name) or {}
        return info.get("status")

    def _health(self) -> dict[str, Any] | None:
        """The health document, or ``None`` while the API server does not answer yet."""
        try:
            response = self.client.get("/api/v2/monitor/health")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def _raise_if_component_died(self) -> None:
        """Raise if any started component has already exited."""
        dead = [p for p in self._processes if not p.is_running()]
        if dead:
            names = ", ".join(f"{p.name} (exit code {p.popen.returncode})" for p in dead)
            raise RuntimeError(f"Airflow component(s) exited: {names}\n{self.logs_tail()}")

    def stop(self) -> None:
        """Tear everything down: SIGTERM each process group, then SIGKILL, then sweep stragglers.

        Idempotent; safe to call from ``__exit__``, from a failed ``__enter__`` and from ``atexit``.
        """
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        try:
            if self._client is not None:
                self._client.close()
            self._terminate_components()
            self._kill_stragglers()
        finally:
            for process in self._processes:
                process.close()
            atexit.unregister(self.stop)
            self.timings["teardown"] = time.monotonic() - started

    def _terminate_components(self) -> None:
        """SIGTERM every component group, wait a few seconds for them, then SIGKILL every group."""
        for process in self._processes:
            process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.term_grace
        while any(p.is_running() for p in self._processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        for process in self._processes:
            process.signal_group(signal.SIGKILL)
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=KILL_WAIT_SECONDS)

    def _kill_stragglers(self) -> None:
        """SIGKILL every process (and group) still carrying this cluster's marker, until none is left."""

        def probe() -> bool | None:
            pids = self.surviving_processes()
            own_group = os.getpgrp()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    group = os.getpgid(pid)
                    if group != own_group:
                        signal_group(group, signal.SIGKILL)
                signal_process(pid, signal.SIGKILL)
            return True if not pids else None

        poll_until(
            probe,
            timeout=KILL_WAIT_SECONDS,
            interval=0.1,
            describe=lambda: (
                f"processes of cluster {self.cluster_id} survived SIGKILL: {self.surviving_processes()}"
            ),
        )

    def surviving_processes(self) -> list[int]:
        """PIDs of live processes started by this cluster: in one of its sessions, or carrying its marker."""
        return sorted(set(processes_in_sessions(self._session_ids)) | set(processes_with_marker(self.cluster_id)))

    def kill_process(self, pid: int) -> None:
        """SIGKILL one process of the cluster (a task's, say) and wait until it is gone."""
        assert pid in self.surviving_processes(), f"pid {pid} is not a process of the cluster"
        os.kill(pid, signal.SIGKILL)
        poll_until(
            lambda: None if pid in self.surviving_processes() else True,
            timeout=10,
            interval=0.1,
            describe=lambda: f"process {pid} survived SIGKILL",
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
        """The raw log file of one task attempt under ``[logging] base_log_folder`` (empty if absent)."""
        relative = Path(f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}", f"attempt={attempt}.log")
        for logs in [self.home / "logs", *(self.worker_home(w) / "logs" for w in self.celery_workers)]:
            if (logs / relative).exists():
                return (logs / relative).read_text(errors="replace")
        return ""

    def component_log(self, name: str) -> str:
        """The whole log of one component (``scheduler``, ``api-server``, ...) so far (empty if absent)."""
        path = self.component_log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------------------------- CLI --

    def airflow_cli(
        self, *args: str, timeout: float = 300.0, worker: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow *args`` with the cluster environment (Celery worker ``worker``'s, when given), in its own
        session; never raises on failure."""
        argv = [self.python, "-m", "airflow", *args]
        with subprocess.Popen(
            argv,
            env=self.env if worker is None else self._worker_env(worker),
            cwd=self.home if worker is None else self.worker_home(worker),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            self._session_ids.add(process.pid)
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except BaseException:
                signal_group(process.pid, signal.SIGKILL)
                process.communicate()
                raise
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    # ------------------------------------------------------------------------------------ logs --

    def logs_tail(self, lines: int = 40, *, access_log: bool = False) -> str:
        """The last ``lines`` lines of each component's log, for assertion messages.

        The API server's access log lines (mostly the harness's own polling) are left out unless
        ``access_log`` is true.
        """
        skip = None if access_log else "[http.access]"
        sections = []
        for name in [*COMPONENT_COMMANDS, *(f"worker-{w}" for w in self.celery_workers)]:
            path = self.component_log_dir / f"{name}.log"
            sections.append(f"----- {name} ({path}) -----\n{tail_file(path, lines, skip=skip)}")
        return "\n".join(sections)
