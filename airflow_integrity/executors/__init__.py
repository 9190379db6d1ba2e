"""What Airflow's executors load from the package: the Celery workers' configuration (:mod:`.celery`)."""
