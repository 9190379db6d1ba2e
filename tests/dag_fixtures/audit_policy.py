"""One task with a visible effect (a file), for the store-outage policy tests (tests/audit)."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def audit_policy() -> None:
    @task
    def write_effect() -> str:
        effect = Path(os.environ["INTEGRITY_TEST_EFFECT_DIR"]) / "effect.txt"
        effect.write_text("done")
        return str(effect)

    write_effect()


audit_policy()
