"""Sensors of airflow-integrity."""
