"""Operators of airflow-integrity."""
