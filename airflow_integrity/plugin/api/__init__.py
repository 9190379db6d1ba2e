"""The plugin's HTTP app: the integrity API (``/api/v1``) and the console's pages, built by :func:`create_app`."""

from __future__ import annotations

from airflow_integrity.plugin.api.app import create_app

__all__ = ["create_app"]
