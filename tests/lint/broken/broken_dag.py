"""A DAG file that does not import: the lint reports it instead of crashing."""

from airflow.sdk import DAG

with DAG(dag_id="broken", schedule=None):
    raise RuntimeError("the partner catalogue is unreachable at parse time")
