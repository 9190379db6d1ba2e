"""DAG-file parse cost of airflow-integrity's operators against the same DAG built with plain Airflow operators.

Parses ``bench/parse_dags/integrity_operators.py`` (every operator, sensor and decorator of the package) and its
twin ``bench/parse_dags/plain_operators.py`` (``PythonOperator``, ``HttpOperator``, two ``BaseSensorOperator``
subclasses, ``@task``) two ways, alternating the files in every round:

``fresh``
    a fresh Python process per parse: Airflow is imported (``import airflow.sdk``) untimed, then the DAG file is
    imported and executed (timed), as the DAG file's own imports cost a process that starts from Airflow alone;
``dag-processor``
    what Airflow's DAG processor does: a parent process plays the processor manager (loads the plugins, as
    starting the processor's Job does through the listener manager, which makes airflow-integrity's plugin
    pre-import the operator modules; imports ``airflow.dag_processing.processor`` and, as ``[dag_processor]
    parsing_pre_import_modules`` does, the ``airflow.*`` modules a DAG file names before forking for it), then
    forks one child per parse, and the child runs the processor's own ``_parse_file`` (``BundleDagBag`` load +
    DAG serialization). Two managers: one that has pre-imported what both files name (a folder holding both;
    the manager keeps what it imported), and one per file that has pre-imported only that file's names (a
    folder holding only that kind of DAG).

Every parse reports wall and CPU time and whether ``great_expectations``, ``pandas`` or ``numpy`` got imported
(they must not). The ratio integrity / plain is taken per round (medians of the parses in it) and the median of
the rounds is reported, with the machine's load average. Target: <= 1.05.

    python bench/parse_time.py [--rounds 7] [--fresh-per-round 3] [--forks-per-round 15]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS = Path(__file__).resolve().parent / "parse_dags"
FILES = {"plain": DAGS / "plain_operators.py", "integrity": DAGS / "integrity_operators.py"}
HEAVY = ("great_expectations", "pandas", "numpy")
PACKAGE_MODULES = (
    "airflow_integrity.operators.http",
    "airflow_integrity.operators.idempotent",
    "airflow_integrity.operators.validate",
    "airflow_integrity.sensors.idempotency",
    "airflow_integrity.sensors.validated_data",
    "airflow_integrity.decorators.idempotent",
    "airflow_integrity.decorators.validated",
)


# What those modules build on; the plain DAG file imports them too.
AIRFLOW_BASES = (
    "airflow.sdk",
    "airflow.sdk.bases.sensor",
    "airflow.sdk.bases.decorator",
    "airflow.providers.common.compat.sdk",
    "airflow.providers.standard.operators.python",
    "airflow.providers.http.operators.http",
)


def _heavy_loaded() -> list[str]:
    return [name for name in HEAVY if name in sys.modules]


def _fresh_child(path: str) -> None:
    import importlib.util

    import airflow.sdk  # noqa: F401  # Airflow itself is loaded before the DAG file

    before = len(sys.modules)
    wall, cpu = time.perf_counter(), time.process_time()
    spec = importlib.util.spec_from_file_location("bench_parse_dag", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    dags = [v for v in vars(module).values() if type(v).__name__ == "DAG"]
    tasks = sum(len(d.task_dict) for d in dags)
    out = {
        "wall": wall,
        "cpu": cpu,
        "heavy": _heavy_loaded(),
        "modules": len(sys.modules) - before,
        "tasks": tasks,
    }
    print(json.dumps(out))


def _package_child() -> None:
    import importlib

    for module in AIRFLOW_BASES:
        importlib.import_module(module)
    before = len(sys.modules)
    wall, cpu = time.perf_counter(), time.process_time()
    for module in PACKAGE_MODULES:
        importlib.import_module(module)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "modules": len(sys.modules) - before, "heavy": _heavy_loaded()}))


def _parse_in_child(processor: Any, log: Any, path: str, out_fd: int) -> int:
    """Parse ``path`` as the DAG processor's child does; write the timing to ``out_fd``; the exit status."""
    try:
        os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
        request = processor.DagFileParseRequest(file=path, bundle_path=Path(path).parent, bundle_name="bench")
        wall, cpu = time.perf_counter(), time.process_time()
        parsed = processor._parse_file(request, log)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if parsed is None or parsed.import_errors:
            print(f"{path}: {parsed and parsed.import_errors}", file=sys.stderr)
            return 1
        tasks = sum(len(d.data["dag"]["tasks"]) for d in parsed.serialized_dags)
        os.write(out_fd, json.dumps({"wall": wall, "cpu": cpu, "heavy": _heavy_loaded(), "tasks": tasks}).encode())
        return 0
    except BaseException as exc:  # never let the child run on into the parent's code
        print(f"{path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _processor_child(paths: list[str], forks: int) -> None:
    import structlog
    from airflow.dag_processing import processor

    log = structlog.get_logger(logger_name="bench")
    # The DAG processor is a Job: starting it calls the listener manager, which loads the plugins (ours
    # among them) in the manager, before any fork.
    from airflow.listeners.listener import get_listener_manager

    get_listener_manager()
    gc.freeze()  # as the manager does before its parsing loop
    for path in paths:  # the manager pre-imports what every file of its folder names, before it forks for it
        processor._pre_import_airflow_modules(path, log)
    results: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    for i in range(forks):
        for path in paths if i % 2 == 0 else list(reversed(paths)):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the parsing process, as the DAG processor forks it
                os.close(read_end)
                os._exit(_parse_in_child(processor, log, path, write_end))
            os.close(write_end)
            with os.fdopen(read_end, "rb") as pipe:
                payload = pipe.read()
            _, status = os.waitpid(pid, 0)
            if status != 0 or not payload:
                raise RuntimeError(f"parsing {path} in a forked child failed (status {status})")
            results[path].append(json.loads(payload))
    print(json.dumps(results))


def _env(home: str) -> dict[str, str]:
    # Installed packages come byte-compiled (pip compiles wheels; the Makefile compiles Airflow): let the
    # warm-up parse write the package's and the DAG files' bytecode too, or every parse would compile them.
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **inherited,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "PYTHONWARNINGS": "ignore",
    }


def _run(args: list[str], env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(name: str, per_round: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    rounds = len(per_round["plain"])
    out: dict[str, Any] = {"mode": name, "rounds": rounds}
    for measure in ("wall", "cpu"):
        medians = {
            kind: [statistics.median(p[measure] for p in parses) for parses in per_round[kind]] for kind in FILES
        }
        ratios = [i / p for i, p in zip(medians["integrity"], medians["plain"], strict=True)]
        out[measure] = {
            "plain": statistics.median(medians["plain"]),
            "integrity": statistics.median(medians["integrity"]),
            "ratio": statistics.median(ratios),
            "ratio_range": (min(ratios), max(ratios)),
        }
    for kind in FILES:
        parses = [p for parses in per_round[kind] for p in parses]
        out[f"{kind}_heavy"] = sorted({m for p in parses for m in p["heavy"]})
        out[f"{kind}_tasks"] = sorted({p["tasks"] for p in parses})
        if "modules" in parses[0]:
            out[f"{kind}_modules"] = statistics.median(p["modules"] for p in parses)
    return out


def _print(summary: dict[str, Any]) -> None:
    print(f"{summary['mode']}: {summary['rounds']} rounds")
    for measure in ("wall", "cpu"):
        m = summary[measure]
        low, high = m["ratio_range"]
        print(
            f"  {measure:4}: plain {m['plain'] * 1000:7.1f} ms, integrity {m['integrity'] * 1000:7.1f} ms, "
            f"ratio {m['ratio']:.3f} (rounds {low:.3f}-{high:.3f}; target <= 1.05)"
        )
    for kind in FILES:
        modules = f", {summary[kind + '_modules']:.0f} modules imported" if kind + "_modules" in summary else ""
        heavy = ", ".join(summary[kind + "_heavy"]) or "none"
        print(f"  {kind:9}: tasks {summary[kind + '_tasks']}{modules}; GX/pandas/numpy imported: {heavy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fresh-per-round", type=int, default=3, help="fresh processes per file and round")
    parser.add_argument("--forks-per-round", type=int, default=15, help="forked parses per file and round")
    parser.add_argument("--mode", choices=("fresh", "dag-processor", "both"), default="both")
    parser.add_argument("--fresh-child", help=argparse.SUPPRESS)
    parser.add_argument("--processor-child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--package-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh_child:
        _fresh_child(args.fresh_child)
        return
    if args.package_child:
        _package_child()
        return
    if args.processor_child:
        _processor_child(args.processor_child, args.forks_per_round)
        return

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as home:
        env = _env(home)
        _run(["--fresh-child", str(FILES["plain"])], env)  # byte-compile both files' imports, warm the disk cache
        _run(["--fresh-child", str(FILES["integrity"])], env)
        loads = []
        if args.mode in ("fresh", "both"):
            fresh: dict[str, list[list[dict[str, Any]]]] = {kind: [] for kind in FILES}
            package: list[dict[str, Any]] = []
            for r in range(args.rounds):
                package.append(_run(["--package-child"], env))
                parses: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FILES}
                for i in range(args.fresh_per_round):
                    for kind in FILES if (r + i) % 2 == 0 else reversed(list(FILES)):
                        parses[kind].append(_run(["--fresh-child", str(FILES[kind])], env))
                for kind in FILES:
                    fresh[kind].append(parses[kind])
                loads.append(os.getloadavg()[0])
            summary = _summary("fresh process: import airflow.sdk, then time the DAG file's import", fresh)
            _print(summary)
            own_wall = statistics.median(p["wall"] for p in package)
            own_cpu = statistics.median(p["cpu"] for p in package)
            print(
                f"  airflow-integrity's {len(PACKAGE_MODULES)} public modules alone, after the Airflow modules "
                f"they build on: {own_wall * 1000:.1f} ms wall, {own_cpu * 1000:.1f} ms CPU "
                f"({own_cpu / summary['cpu']['plain']:.1%} of the plain file's parse), "
                f"{package[0]['modules']} modules, heavy: {', '.join(package[0]['heavy']) or 'none'}"
            )
        if args.mode in ("dag-processor", "both"):
            shared: dict[str, list[list[dict[str, Any]]]] = {kind: [] for kind in FILES}
            own: dict[str, list[list[dict[str, Any]]]] = {kind: [] for kind in FILES}
            forks = ["--forks-per-round", str(args.forks_per_round)]
            for r in range(args.rounds):
                kinds = list(FILES) if r % 2 == 0 else list(reversed(list(FILES)))
                both = ["--processor-child", *(str(FILES[k]) for k in kinds), *forks]
                results = _run(both, env)
                for kind in FILES:
                    shared[kind].append(results[str(FILES[kind])])
                for kind in kinds:
                    own[kind].append(_run(["--processor-child", str(FILES[kind]), *forks], env)[str(FILES[kind])])
                loads.append(os.getloadavg()[0])
            _print(
                _summary(
                    "DAG processor, manager pre-imported both files' airflow.* names; fork, _parse_file", shared
                )
            )
            _print(_summary("DAG processor, manager pre-imported only the parsed file's airflow.* names", own))
    print(f"load average (1 min) during the rounds: {min(loads):.2f}-{max(loads):.2f}")


if __name__ == "__main__":
    main()
