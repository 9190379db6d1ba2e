"""Qualification of an installed deployment (installation / operational qualification in GAMP 5 terms).

``airflow integrity qualify`` runs :func:`~airflow_integrity.qualification.run.qualify` against the store and
Airflow configuration a deployment really uses, not the test suite: each check in :mod:`.checks` proves one
property there and says what it saw. The report (:mod:`.report`) is for people and, as JSON, for the
validation file, signed with the checkpoint key when one is configured.
"""
