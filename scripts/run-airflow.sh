#!/usr/bin/env bash
# Start Airflow standalone on embedded defaults (SQLite metadata DB, SQLite integrity store) with
# this repository's dags/ and the airflow-integrity provider and plugin, then say where to log in.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PORT="${AIRFLOW_PORT:-8080}"
export PATH="$VENV/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# LocalExecutor starts one worker per parallelism slot; 4 suits a small machine.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__PORT="$PORT"
# Tasks reach the API server here; it must follow the port or every task fails with "Connection refused".
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:$PORT/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"

# Another server on the port would answer the health check below for this one, and this one could not start.
if python - "$PORT" <<'PY'
import socket, sys
with socket.socket() as s:
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
then
    echo "Port $PORT is already in use (another Airflow?). Stop it, or choose another port: AIRFLOW_PORT=8081 make run" >&2
    exit 1
fi

mkdir -p "$AIRFLOW_HOME"
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
if [ ! -s "$PASSWORDS" ]; then
    python -c 'import json, secrets, sys; json.dump({"admin": secrets.token_urlsafe(12)}, open(sys.argv[1], "w"))' "$PASSWORDS"
fi
PASSWORD="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS")"

airflow db migrate >/dev/null
airflow integrity db migrate

# DEMO ONLY: the payments, ERP, credit bureaus and lender the example DAGs call, in memory on a free loopback
# port; it writes the example DAGs' connections (AIRFLOW_CONN_*) and stops when Airflow does.
DEMO_ENV="$AIRFLOW_HOME/demo-connections.env"
rm -f "$DEMO_ENV"
python "$ROOT/demo/services.py" --env-file "$DEMO_ENV" > "$AIRFLOW_HOME/demo-services.url" &
for _ in $(seq 1 100); do [ -s "$DEMO_ENV" ] && break; sleep 0.1; done
# shellcheck disable=SC1090
. "$DEMO_ENV"

announce() {
    for _ in $(seq 1 600); do
        if python - "$PORT" <<'PY' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen(f"http://localhost:{sys.argv[1]}/api/v2/monitor/health", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
            printf '\n============================================================\n'
            printf ' Airflow is up:  http://localhost:%s\n' "$PORT"
            printf ' Log in as:      admin / %s\n' "$PASSWORD"
            printf ' (password kept in %s)\n' "$PASSWORDS"
            printf ' Integrity view: http://localhost:%s/integrity/ui/\n' "$PORT"
            printf ' Demo services:  %s (payments, ERP, credit bureaus, lender, payer, clearinghouse)\n' "$(cat "$AIRFLOW_HOME/demo-services.url")"
            printf '============================================================\n\n'
            return
        fi
        sleep 1
    done
}
announce &
exec airflow standalone
