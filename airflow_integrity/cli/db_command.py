"""``airflow integrity db ...`` commands."""

from __future__ import annotations

import argparse
import os
import sys

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import StoreError


def _hook(args: argparse.Namespace) -> IntegrityCheckHook:
    # The CLI runs beside the metadata database: let connection look-ups reach it, as Airflow's own
    # `airflow connections` commands do.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    return IntegrityCheckHook(integrity_conn_id=getattr(args, "conn_id", None))


def migrate(args: argparse.Namespace) -> None:
    """Apply pending migrations and print the resulting revision."""
    try:
        store = _hook(args).get_store(ensure_schema=False)
        result = store.migrate()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if result.changed:
        print(
            f"Migrated integrity store {store.location.display} from {result.before or 'empty'} to {result.after}."
        )
    else:
        print(f"Integrity store {store.location.display} is already at {result.after}.")


def check(args: argparse.Namespace) -> None:
    """Exit 0 when the store is reachable and current, 1 otherwise."""
    try:
        status = _hook(args).get_store(ensure_schema=False).describe()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(
        f"backend={status.backend} location={status.location} store_id={status.store_id} "
        f"revision={status.revision} head={status.head}"
    )
    if not status.current:
        print("error: schema is not current; run `airflow integrity db migrate`.", file=sys.stderr)
        raise SystemExit(1)
