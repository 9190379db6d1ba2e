"""Overhead of validating through ``ValidateDataOperator`` over calling Great Expectations directly.

Validates 1,000,000 rows x 5 expectations on the same frame, in one process, in rounds that interleave:

* GX ``ValidationDefinition.run(batch_parameters={"dataframe": df})`` (GX loads the batch once);
* GX ``batch_definition.get_batch(...).validate(suite)`` (GX's in-memory data how-to; GX loads, and hashes, the
  batch twice);
* ``airflow_integrity.validation.validate()`` (suite load, data checks, SHA-256 content fingerprint, GX run,
  bounded summary, full result as a JSON dict);
* ``ValidateDataOperator(data=df, ...).execute(context)``: all of the above plus the full result stored in a
  real SQLite integrity store and the ``validation.*`` audit event recorded (the store is a file in a temporary
  directory, selected by ``AIRFLOW_CONN_INTEGRITY_DEFAULT``);
* the same with GX's own md5 batch hash kept (the validation turns it off, as the SHA-256 content fingerprint
  covers the frame): what the operator adds on top of GX's full work;
* the GX Airflow provider's ``GXValidateDataFrameOperator(...).execute(context)``, installed with ``--no-deps``
  into a directory outside the project's environment (its ``structlog<25.5`` pin conflicts with Airflow 3.3)
  and put on ``sys.path`` of this process only; skipped, with the reason, when it cannot be installed or run.

Each round runs every mode once (the order rotates), after a ``gc.collect()``; the ratios are taken per round
and their median is reported (target <= 1.10), with the load average. Also reports the fingerprint alone,
import and context-creation costs, the quarantine path, and SQL validated in the database versus fetched.

Run: python bench/validation_overhead.py [--rows N] [--rounds K] [--gx-provider-dir DIR | --no-gx-provider]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GX_PROVIDER = "airflow-provider-great-expectations==1.0.0"
SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient_id"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["new", "active"]}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}},
]
TITLES = {
    "definition": "GX ValidationDefinition.run",
    "batch": "GX get_batch(...).validate(suite)",
    "validate": "airflow_integrity validate()",
    "operator": "ValidateDataOperator.execute",
    "operator_gx_hash": "ValidateDataOperator, GX hashing kept",
    "gx_provider": "GXValidateDataFrameOperator.execute",
}


def _subprocess_seconds(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return float(out.stdout.strip().splitlines()[-1])


def make_frame(rows: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "patient_id": np.arange(rows, dtype=np.int64),
            "age": rng.integers(0, 123, rows),  # ~2% above 120
            "status": rng.choice(["new", "active", "closed"], rows, p=[0.5, 0.49, 0.01]),
            "name": rng.choice(["Ada", "Grace", "Linus", "Barbara"], rows),
            "amount": rng.random(rows) * 1000,
        }
    )
    return frame


class _TaskInstance:
    """What the GX provider's operator needs of ``context["ti"]``: somewhere to push its result."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def gx_provider_operator(target: Path | None) -> tuple[Any, str]:
    """Install the GX provider with ``--no-deps`` into ``target`` (once) and import its operator.

    Returns:
        ``(GXValidateDataFrameOperator or None, what happened)``.
    """
    if target is None:
        return None, "not run (--no-gx-provider)"
    if not (target / "great_expectations_provider").is_dir():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), GX_PROVIDER],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return None, f"pip install --no-deps {GX_PROVIDER} failed: {done.stderr.strip()[-500:]}"
    sys.path.append(str(target))
    try:
        from great_expectations_provider.operators.validate_dataframe import GXValidateDataFrameOperator
    except Exception as exc:
        return None, f"import failed under this Airflow: {type(exc).__name__}: {exc}"
    return GXValidateDataFrameOperator, f"{GX_PROVIDER} from {target}"


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def bench_frames(rows: int, rounds: int, provider_dir: Path | None) -> dict[str, Any]:
    import great_expectations as gx
    from great_expectations.execution_engine.pandas_execution_engine import hash_pandas_dataframe

    from airflow_integrity.operators.validate import ValidateDataOperator
    from airflow_integrity.validation import gx_runtime, validate
    from airflow_integrity.validation.fingerprint import frame_fingerprint, start_frame_fingerprint

    frame = make_frame(rows)

    started = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    batch_definition = (
        context.data_sources.add_pandas("direct")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
    )
    context_seconds = time.perf_counter() - started
    gx_suite = context.suites.add(gx.ExpectationSuite(name="direct", expectations=[dict(e) for e in SUITE]))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="direct", suite=gx_suite, data=batch_definition)
    )

    started = time.perf_counter()
    first = validate(frame.head(10), SUITE)
    first_call_seconds = time.perf_counter() - started
    assert first.summary["statistics"]["evaluated_expectations"] == len(SUITE)
    started = time.perf_counter()
    ValidateDataOperator(task_id="validate_frame", data=frame.head(10), suite=SUITE, on_failure="warn").execute({})
    first_operator_seconds = time.perf_counter() - started  # creates and migrates the store

    provider_class, provider_note = gx_provider_operator(provider_dir)
    provider_error = None

    def run_definition() -> Any:
        return definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY").statistics

    def run_batch() -> Any:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(gx_suite, result_format="SUMMARY").statistics

    def run_validate() -> Any:
        return validate(frame, SUITE, result_format="SUMMARY").summary["statistics"]

    def run_operator() -> Any:
        operator = ValidateDataOperator(task_id="validate_frame", data=frame, suite=SUITE, on_failure="warn")
        return operator.execute({"ti": _TaskInstance()})["summary"]["statistics"]  # type: ignore[typeddict-item]

    def run_operator_gx_hash() -> Any:  # our overhead alone: GX hashes the batch as it does when called directly
        saved = gx_runtime.without_batch_hash
        gx_runtime.without_batch_hash = contextlib.nullcontext  # type: ignore[assignment]
        try:
            return run_operator()
        finally:
            gx_runtime.without_batch_hash = saved

    def run_provider() -> Any:
        from airflow.exceptions import AirflowException

        operator = provider_class(
            task_id="gx_validate_frame",
            configure_dataframe=lambda: frame,
            configure_expectations=lambda ctx: gx.ExpectationSuite(
                name="gx_provider", expectations=[dict(e) for e in SUITE]
            ),
            result_format="SUMMARY",
        )
        ti = _TaskInstance()
        with contextlib.suppress(AirflowException):  # GXValidationFailed: the frame has bad rows, as intended
            operator.execute({"ti": ti})
        return ti.pushed["return_value"]["statistics"]

    modes: dict[str, Callable[[], Any]] = {
        "definition": run_definition,
        "batch": run_batch,
        "validate": run_validate,
        "operator": run_operator,
        "operator_gx_hash": run_operator_gx_hash,
    }
    if provider_class is not None:
        try:
            run_provider()  # also the check that it runs at all under this Airflow
            modes["gx_provider"] = run_provider
        except Exception as exc:
            provider_error = f"{type(exc).__name__}: {exc}"
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    loads = []
    names = list(modes)
    for r in range(rounds):
        statistics_seen = {}
        for mode in names[r % len(names) :] + names[: r % len(names)]:
            seconds, stats = _timed(modes[mode])
            times[mode].append(seconds)
            statistics_seen[mode] = {k: stats[k] for k in ("evaluated_expectations", "successful_expectations")}
        assert len({json.dumps(s, sort_keys=True) for s in statistics_seen.values()}) == 1, statistics_seen
        loads.append(os.getloadavg()[0])

    parts: dict[str, list[float]] = {"fingerprint": [], "fingerprint_serialise": [], "gx_md5": []}
    for _ in range(rounds):
        parts["fingerprint"].append(_timed(lambda: frame_fingerprint(frame))[0])
        seconds, pending = _timed(lambda: start_frame_fingerprint(frame))
        pending.result()
        parts["fingerprint_serialise"].append(seconds)
        parts["gx_md5"].append(_timed(lambda: hash_pandas_dataframe(frame))[0])

    quarantine_times = []
    for _ in range(max(1, rounds // 3)):
        from airflow_integrity.validation import split_rows

        seconds, split = _timed(lambda: split_rows(validate(frame, SUITE, collect_unexpected_rows=True)))
        quarantine_times.append(seconds)
    outcome = validate(frame, SUITE)
    return {
        "rows": rows,
        "rounds": rounds,
        "loads": loads,
        "context_seconds": context_seconds,
        "first_call_seconds": first_call_seconds,
        "first_operator_seconds": first_operator_seconds,
        "times": times,
        "parts": {k: statistics.median(v) for k, v in parts.items()},
        "provider_note": provider_note,
        "provider_error": provider_error,
        "quarantine": statistics.median(quarantine_times),
        "bad_fraction": split.bad_fraction,
        "summary_bytes": len(json.dumps(outcome.summary)),
    }


def bench_sql(rows: int) -> dict[str, float]:
    import pandas as pd
    import sqlalchemy as sa

    from airflow_integrity.validation import SqlSource, validate

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = sa.create_engine(url)
        make_frame(rows).to_sql("patients", engine, index=False, chunksize=50_000)
        engine.dispose()
        source = SqlSource(url, query="SELECT * FROM patients")
        validate(source, SUITE)  # datasource and asset set up once per process
        started = time.perf_counter()
        pushed = validate(source, SUITE)
        pushdown = time.perf_counter() - started
        started = time.perf_counter()
        fetched = validate(pd.read_sql("SELECT * FROM patients", url), SUITE)
        read_sql = time.perf_counter() - started
    assert pushed.summary["statistics"] == fetched.summary["statistics"]
    return {"pushdown": pushdown, "read_sql": read_sql}


def _ratios(times: dict[str, list[float]], subject: str, baseline: str) -> list[float]:
    return [s / b for s, b in zip(times[subject], times[baseline], strict=True)]


def report(frames: dict[str, Any]) -> None:
    times = frames["times"]
    loads = frames["loads"]
    print(
        f"{frames['rows']:,} rows x {len(SUITE)} expectations, {frames['rounds']} interleaved rounds "
        f"(load average 1 min {min(loads):.2f}-{max(loads):.2f}); median (min):"
    )
    for mode, values in times.items():
        print(f"  {TITLES[mode]:38}: {statistics.median(values):.3f} s ({min(values):.3f})")
    parts = frames["parts"]
    print(f"  SHA-256 content fingerprint alone     : {parts['fingerprint']:.3f} s")
    print(
        f"    of which serialising the columns    : {parts['fingerprint_serialise']:.3f} s "
        "(the hashing of the rest overlaps GX)"
    )
    print(f"  GX's own md5 batch fingerprint        : {parts['gx_md5']:.3f} s (inside every GX batch load)")
    pairs = [
        ("operator", "definition"),
        ("operator", "batch"),
        ("operator_gx_hash", "definition"),
        ("operator_gx_hash", "batch"),
        ("validate", "definition"),
        ("validate", "batch"),
        ("gx_provider", "definition"),
        ("operator", "gx_provider"),
    ]
    print("  ratios, median of the rounds' ratios (range):")
    for subject, baseline in pairs:
        if subject in times and baseline in times:
            ratios = _ratios(times, subject, baseline)
            print(
                f"    {TITLES[subject]} / {TITLES[baseline]}: {statistics.median(ratios):.3f} "
                f"({min(ratios):.3f}-{max(ratios):.3f})"
            )
    print(
        f"  GX provider: {frames['provider_note']}"
        + (f"; failed: {frames['provider_error']}" if frames["provider_error"] else "")
    )
    print(f"  summary size: {frames['summary_bytes']} bytes")
    print(
        f"  quarantine path (COMPLETE + split): {frames['quarantine']:.3f} s, "
        f"bad fraction {frames['bad_fraction']:.4f}"
    )
    print(
        f"GX ephemeral context + pandas datasource/asset/batch definition: {frames['context_seconds']:.3f} s; "
        f"first validate() of a process: {frames['first_call_seconds']:.3f} s; first operator run (creates the "
        f"store): {frames['first_operator_seconds']:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sql-rows", type=int, default=200_000)
    parser.add_argument(
        "--gx-provider-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "airflow-integrity-bench" / "gx-provider-1.0.0",
        help="where the GX provider is installed with --no-deps (reused when present)",
    )
    parser.add_argument("--no-gx-provider", action="store_true")
    parser.add_argument("--skip-imports", action="store_true", help="skip the fresh-process import timings")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="integrity-bench-")
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] = f"sqlite:///{Path(home) / 'integrity.db'}"
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.skip_imports:
        gx_import = _subprocess_seconds("import great_expectations")
        our_import = _subprocess_seconds("import airflow_integrity.validation")
        print(f"import great_expectations (fresh process): {gx_import:.2f} s")
        print(f"import airflow_integrity.validation (fresh process): {our_import:.3f} s")

    frames = bench_frames(args.rows, args.rounds, None if args.no_gx_provider else args.gx_provider_dir)
    report(frames)
    sql = bench_sql(args.sql_rows)
    print(f"SQLite query of {args.sql_rows:,} rows x {len(SUITE)} expectations:")
    print(f"  validated in the database (GX SQL datasource): {sql['pushdown']:.3f} s")
    print(f"  pandas.read_sql + validate in pandas          : {sql['read_sql']:.3f} s")
    print(f"  ratio in-database / read_sql                  : {sql['pushdown'] / sql['read_sql']:.3f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
