"""Triggers of airflow-integrity (run in the Airflow triggerer)."""
