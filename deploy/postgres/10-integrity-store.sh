#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory: the integrity store's database,
# owned by its owner role, and the runtime role every Airflow component connects as (see README, "Two
# PostgreSQL roles"). The owner migrates and grants in airflow-init.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_password="$INTEGRITY_OWNER_PASSWORD" -v runtime_password="$INTEGRITY_RUNTIME_PASSWORD" <<'SQL'
CREATE ROLE integrity_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE integrity_runtime LOGIN PASSWORD :'runtime_password';
CREATE DATABASE integrity OWNER integrity_owner ENCODING 'UTF8' TEMPLATE template0;
SQL
