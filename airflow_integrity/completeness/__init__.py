"""Audit completeness: every state Airflow records on a task instance or DAG run has its audit event.

The listeners record what workers report (a task's start and its outcome) and what people change through the
API. Airflow sets other states without any listener being called: tasks skipped by a branch, a short-circuit or
a trigger rule, ``upstream_failed``, ``removed``, deferrals and reschedules, clears, runs created. This package
reads Airflow's metadata database (:mod:`.metadata`), says which events it calls for and why each state was set
(:mod:`.expected`), finds those the trail lacks and records them (:mod:`.gaps`): at the end of every DAG run,
in the scheduler's periodic sweep (:mod:`.sweep`), and on demand with ``airflow integrity audit reconcile``.
"""
