"""Start real Airflow 3 components in a temporary ``AIRFLOW_HOME`` and drive them over the REST API.

The harness is three modules: :mod:`tests.e2e.processes` (child processes, /proc sweeps, waiting),
:mod:`tests.e2e.cluster` (the cluster's configuration and lifecycle) and :mod:`tests.e2e.rest` (its REST
client). This module is their face for the tests.
"""

from __future__ import annotations

from tests.e2e.cluster import AirflowCluster, to_sqlalchemy_uri
from tests.e2e.processes import free_port, poll_until, processes_with_marker, tail_file

__all__ = ["AirflowCluster", "free_port", "poll_until", "processes_with_marker", "tail_file", "to_sqlalchemy_uri"]
