# The Airflow image with airflow-integrity installed, for docker-compose.yaml (and the official Helm chart).
# Installed with Airflow's constraints for this Airflow and Python version, never at container start.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
ARG PYTHON_VERSION
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow-integrity/
COPY --chown=airflow:0 airflow_integrity /opt/airflow-integrity/airflow_integrity
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-integrity \
    --constraint "https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt"
