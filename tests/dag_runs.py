"""Load DAGs for ``dag.test()``: the test DAGs of tests/dag_fixtures and the example DAGs of dags/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.airflow_versions import dag_bag_module

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "dag_fixtures"
EXAMPLES = REPO_ROOT / "dags"


def _load(folder: Path, dag_id: str) -> Any:
    bag = dag_bag_module().DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id!r} in {folder}"
    return dag


def load_fixture_dag(dag_id: str) -> Any:
    """A test DAG from tests/dag_fixtures (its own bundle, so ``dag.test()`` can run it)."""
    return _load(FIXTURES, dag_id)


def load_example_dag(dag_id: str) -> Any:
    """An example DAG from dags/."""
    return _load(EXAMPLES, dag_id)


def load_airflow_example(dag_id: str) -> Any:
    """One of Airflow's own example DAGs (``tests.conftest.AIRFLOW_EXAMPLES``), from its bundle of their files."""
    from tests.conftest import AIRFLOW_EXAMPLES_BUNDLE

    return _load(AIRFLOW_EXAMPLES_BUNDLE, dag_id)
