"""Overhead of ``airflow_integrity.validation.validate`` over calling Great Expectations directly.

Validates 1,000,000 rows x 5 expectations through ``validate()`` (suite load, data checks, SHA-256 fingerprint,
GX run, bounded summary, full result as JSON dict) and through GX directly on the same frame in the same
process, interleaved, and prints the median of each and their ratios (target <= 1.10). GX directly is timed two
ways: ``ValidationDefinition.run(batch_parameters={"dataframe": df})`` (what the GX Airflow provider runs; GX
loads the batch once) and ``batch_definition.get_batch(...).validate(suite)`` (GX's in-memory data how-to; GX
loads, and hashes, the batch twice). Also reports import and context-creation costs, the
quarantine path, and SQL validated in the database versus fetched with pandas.read_sql.

Run: python bench/validation_overhead.py [--rows N] [--repeat K]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient_id"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["new", "active"]}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}},
]


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


def bench_frames(rows: int, repeat: int) -> dict[str, float]:
    import great_expectations as gx

    from airflow_integrity.validation import validate
    from airflow_integrity.validation.fingerprint import frame_fingerprint

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

    definition_times, batch_times, ours_times = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        direct = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
        definition_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        outcome = validate(frame, SUITE, result_format="SUMMARY")
        ours_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        via_batch = batch.validate(gx_suite, result_format="SUMMARY")
        batch_times.append(time.perf_counter() - started)
        assert direct.statistics == outcome.summary["statistics"] == via_batch.statistics

    fingerprint_times = []
    for _ in range(repeat):
        started = time.perf_counter()
        frame_fingerprint(frame)
        fingerprint_times.append(time.perf_counter() - started)

    quarantine_times = []
    for _ in range(max(1, repeat // 2)):
        from airflow_integrity.validation import split_rows

        started = time.perf_counter()
        collected = validate(frame, SUITE, collect_unexpected_rows=True)
        split = split_rows(collected)
        quarantine_times.append(time.perf_counter() - started)
    return {
        "context_seconds": context_seconds,
        "first_call_seconds": first_call_seconds,
        "definition": statistics.median(definition_times),
        "batch": statistics.median(batch_times),
        "ours": statistics.median(ours_times),
        "definition_min": min(definition_times),
        "batch_min": min(batch_times),
        "ours_min": min(ours_times),
        "fingerprint": statistics.median(fingerprint_times),
        "quarantine": statistics.median(quarantine_times),
        "bad_fraction": split.bad_fraction,
        "summary_bytes": len(__import__("json").dumps(outcome.summary)),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sql-rows", type=int, default=200_000)
    args = parser.parse_args()

    gx_import = _subprocess_seconds("import great_expectations")
    our_import = _subprocess_seconds("import airflow_integrity.validation")
    print(f"import great_expectations (fresh process): {gx_import:.2f} s")
    print(f"import airflow_integrity.validation (fresh process): {our_import:.3f} s")

    frames = bench_frames(args.rows, args.repeat)
    print(f"GX ephemeral context + pandas datasource/asset/batch definition: {frames['context_seconds']:.3f} s")
    print(f"first validate() call in a process (creates the cached context): {frames['first_call_seconds']:.3f} s")
    print(f"{args.rows:,} rows x {len(SUITE)} expectations, median of {args.repeat} interleaved runs:")
    for key, title in (
        ("definition", "GX ValidationDefinition.run           "),
        ("batch", "GX get_batch(...).validate(suite)      "),
        ("ours", "airflow_integrity validate()           "),
    ):
        print(f"  {title}: {frames[key]:.3f} s (min {frames[key + '_min']:.3f})")
    print(f"  of which the SHA-256 fingerprint        : {frames['fingerprint']:.3f} s")
    for key, title in (("definition", "ValidationDefinition.run"), ("batch", "get_batch().validate()")):
        ratio, ratio_min = frames["ours"] / frames[key], frames["ours_min"] / frames[key + "_min"]
        print(f"  ratio validate() / {title:24}: {ratio:.3f} (of minima {ratio_min:.3f}; target <= 1.10)")
    print(f"  summary size                            : {frames['summary_bytes']} bytes")
    print(
        f"  quarantine path (COMPLETE + split)      : {frames['quarantine']:.3f} s, "
        f"bad fraction {frames['bad_fraction']:.4f}"
    )
    sql = bench_sql(args.sql_rows)
    print(f"SQLite query of {args.sql_rows:,} rows x {len(SUITE)} expectations:")
    print(f"  validated in the database (GX SQL datasource): {sql['pushdown']:.3f} s")
    print(f"  pandas.read_sql + validate in pandas          : {sql['read_sql']:.3f} s")
    print(f"  ratio in-database / read_sql                  : {sql['pushdown'] / sql['read_sql']:.3f}")


if __name__ == "__main__":
    main()
