"""TaskFlow decorators of airflow-integrity (registered as ``@task.<name>`` through the provider info)."""
