"""``airflow integrity db ...`` commands."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import StoreError


def _hook(args: argparse.Namespace) -> IntegrityCheckHook:
    # The CLI runs beside the metadata database: let connection look-ups reach it, as Airflow's own
    # `airflow connections` commands do.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    return IntegrityCheckHook(integrity_conn_id=getattr(args, "conn_id", None))


def _fail(exc: Exception) -> NoReturn:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None


def migrate(args: argparse.Namespace) -> None:
    """Apply pending migrations and print the resulting revision; with ``--runtime-role``, then grant that role
    exactly the store's runtime privileges (see :mod:`airflow_integrity.store.roles`)."""
    from sqlalchemy.exc import ProgrammingError

    from airflow_integrity.store import roles

    runtime_role = getattr(args, "runtime_role", None)
    try:
        store = _hook(args).get_store(ensure_schema=False)
        if runtime_role is not None:
            roles.require_runtime_role(store, runtime_role)
        try:
            result = store.migrate()
        except ProgrammingError as exc:
            refused = roles.refused_migration(store, exc)
            if refused is None:
                raise
            raise refused from exc
    except StoreError as exc:
        _fail(exc)
    if result.changed:
        print(
            f"Migrated integrity store {store.location.display} from {result.before or 'empty'} to {result.after}."
        )
    else:
        print(f"Integrity store {store.location.display} is already at {result.after}.")
    try:
        if runtime_role is not None:
            print("\n".join(roles.grant_runtime_role(store, runtime_role).summary()))
        elif result.changed:
            for grantee in roles.store_grantees(store):
                print(
                    f"note: role {grantee!r} holds privileges on this store; to cover the objects this migration "
                    f"added, run `airflow integrity db migrate --runtime-role {grantee}`."
                )
    except StoreError as exc:
        _fail(exc)


def check(args: argparse.Namespace) -> None:
    """Exit 0 when the store is reachable and current (and, with ``--runtime-role``, that role holds exactly the
    runtime privileges), 1 otherwise."""
    try:
        store = _hook(args).get_store(ensure_schema=False)
        status = store.describe()
    except StoreError as exc:
        _fail(exc)
    print(
        f"backend={status.backend} location={status.location} store_id={status.store_id} "
        f"revision={status.revision} head={status.head}"
    )
    if not status.current:
        print("error: schema is not current; run `airflow integrity db migrate`.", file=sys.stderr)
        raise SystemExit(1)
    runtime_role = getattr(args, "runtime_role", None)
    if runtime_role is None:
        return
    from airflow_integrity.store import roles

    try:
        problems = roles.check_runtime_role(store, runtime_role)
    except StoreError as exc:
        _fail(exc)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(f"runtime role {runtime_role!r} holds exactly the store's runtime privileges.")
