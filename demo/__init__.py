"""Demo services for the example DAGs (not part of the airflow-integrity package)."""
