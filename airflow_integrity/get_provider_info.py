"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_integrity import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider description: connection type, hooks, CLI, config section and plugin."""
    return {
        "package-name": "airflow-integrity",
        "name": "Integrity",
        "description": (
            "Validated data between tasks, exactly-once effects and a tamper-evident audit trail "
            "for regulated business processes."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Integrity",
                "external-doc-url": "https://pypi.org/project/airflow-integrity/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Integrity",
                "python-modules": ["airflow_integrity.hooks.integrity"],
            }
        ],
        "operators": [
            {
                "integration-name": "Integrity",
                "python-modules": [
                    "airflow_integrity.operators.idempotent",
                    "airflow_integrity.operators.http",
                    "airflow_integrity.operators.compensation",
                    "airflow_integrity.operators.error_budget",
                    "airflow_integrity.operators.validate",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Integrity",
                "python-modules": [
                    "airflow_integrity.sensors.idempotency",
                    "airflow_integrity.sensors.validated_data",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Integrity",
                "python-modules": [
                    "airflow_integrity.triggers.idempotency",
                    "airflow_integrity.triggers.validated_data",
                ],
            }
        ],
        "task-decorators": [
            {"name": "idempotent", "class-name": "airflow_integrity.decorators.idempotent.idempotent_task"},
            {"name": "validated", "class-name": "airflow_integrity.decorators.validated.validated_task"},
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_integrity.hooks.integrity.IntegrityCheckHook",
                "hook-name": "Integrity Store",
                "connection-type": "integrity",
            }
        ],
        "cli": ["airflow_integrity.cli.definition.get_integrity_cli_commands"],
        "plugins": [
            {"name": "integrity", "plugin-class": "airflow_integrity.plugin.IntegrityPlugin"},
        ],
        "config": {
            "integrity": {
                "description": "Settings of the airflow-integrity provider and its dedicated integrity store.",
                "options": {
                    "conn_id": {
                        "description": (
                            "Airflow connection that locates the integrity store (PostgreSQL in production). "
                            "When the connection does not exist, an SQLite file under AIRFLOW_HOME is used."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "integrity_default",
                        "default": "integrity_default",
                    },
                    "sqlite_path": {
                        "description": (
                            "Path of the embedded SQLite store used when the connection is not defined. "
                            "Empty means integrity.db under AIRFLOW_HOME."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/var/lib/airflow/integrity.db",
                        "default": "",
                    },
                    "auto_migrate": {
                        "description": (
                            "Apply pending store migrations the first time a process opens the store. "
                            "Turn off where schema changes must go through `airflow integrity db migrate`."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "audit_on_store_error": {
                        "description": (
                            "What happens when an audit event cannot reach the store: 'fail' (the task "
                            "fails rather than run unaudited) or 'spool' (the event is written to a durable "
                            "local spool and appended, in order, when the store is reachable again)."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "spool",
                        "default": "fail",
                    },
                    "spool_dir": {
                        "description": (
                            "Directory of the audit spool. Empty means integrity-spool under AIRFLOW_HOME."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/var/spool/airflow-integrity",
                        "default": "",
                    },
                    "audit_listeners": {
                        "description": (
                            "Record Airflow's task-instance and DAG-run states in the audit trail (the plugin's "
                            "listeners, the check at the end of every DAG run and the scheduler's sweep). Switch "
                            "it off only to see what `airflow integrity audit reconcile` finds without them."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "True",
                    },
                    "completeness_interval": {
                        "description": (
                            "Seconds between the scheduler's sweeps that record the states Airflow set without "
                            "any listener being called (skips, clears, deferrals) in DAG runs still going; 0 "
                            "leaves it to the end of each run."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "60",
                        "default": "60",
                    },
                    "quarantine_dir": {
                        "description": (
                            "Folder (local path or object-store URI) for the rows a validation with "
                            "on_failure='quarantine' rejects, when the task sets no quarantine_path. Each "
                            "validation writes a new file there, never overwriting one. Empty means quarantine "
                            "under AIRFLOW_HOME."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://bucket/quarantine",
                        "default": "",
                    },
                    "checkpoint_key_conn_id": {
                        "description": (
                            "Connection whose password holds the key that signs audit checkpoints (an HMAC "
                            "secret or an Ed25519 private key in PEM form). When set, the scheduler signs the "
                            "head of the audit trail every checkpoint_interval seconds. Empty: checkpoints "
                            "only on demand (`airflow integrity audit checkpoint`)."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "audit_signing_key",
                        "default": "",
                    },
                    "checkpoint_interval": {
                        "description": "Seconds between two periodic signed checkpoints of the audit trail.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "900",
                        "default": "3600",
                    },
                    "preload_validation": {
                        "description": (
                            "With the LocalExecutor, import Great Expectations once in the scheduler, before "
                            "it forks its workers, so that no task process that validates data imports it "
                            "again (about 4 s each on 2 cores). Costs the scheduler that time once at start "
                            "and ~160 MB of memory shared with the forked processes. No effect with other "
                            "executors or components."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "sqlite_busy_timeout": {
                        "description": "Seconds an SQLite writer waits for a lock held by another process.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "60",
                        "default": "60",
                    },
                    "approval_settle_seconds": {
                        "description": (
                            "The API server holds an answer to a human-in-the-loop task (PATCH .../hitlDetails) "
                            "until the task's question is this many seconds old. Airflow 3.3 fails a task whose "
                            "answer re-queues it before the scheduler has handled the end of the process that "
                            "parked it ('state mismatch'), and that end can be reported up to [workers] "
                            "min_heartbeat_interval (5 s) late; the hold gives it time to arrive. Keep it above "
                            "that interval plus a scheduler loop. 0 switches it off. See "
                            "docs/airflow-hitl-state-mismatch.md."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "15",
                        "default": "10",
                    },
                },
            }
        },
    }
