"""Audit trail: the hash-chained event log, its signed checkpoints and (PostgreSQL) the intake table.

An event is stored as its canonical body, the text its hash covers; what one filters on is indexed from
the body by the database, so it cannot disagree with it. Every table refuses UPDATE
and DELETE (and TRUNCATE on PostgreSQL) through triggers.

Revision ID: a1
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "a1"
down_revision = "0001"
branch_labels = None
depends_on = None

EVENT = "integrity_audit_event"
INTAKE = "integrity_audit_intake"
CHECKPOINT = "integrity_audit_checkpoint"
# Arbitrary constant naming "audit chain" among the database's advisory locks.
CHAIN_LOCK_KEY = 0x1A7E_A0D1
# Changing it makes a transaction's commit wait for the WAL flush (see integrity_audit_append).
FLUSH_SEQUENCE = "integrity_audit_flush_seq"


# Fields one filters on. PostgreSQL indexes them in a jsonb copy of the body that the database generates
# (one parse per event); SQLite indexes json_extract() of the body itself.
INDEXED = {
    "event_id": ("event_id",),
    "business_key": ("business_key",),
    "dag_run": ("dag_id", "run_id"),
    "recorded_at": ("recorded_at",),
}


def _field(name: str, postgres: bool) -> str:
    return f"(doc ->> '{name}')" if postgres else f"json_extract(body, '$.{name}')"


def _intake_columns() -> list[sa.Column]:
    return [
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("dag_version", sa.String(250)),
        sa.Column("bundle_version", sa.String(250)),
        sa.Column("run_id", sa.String(250)),
        sa.Column("task_id", sa.String(250)),
        sa.Column("map_index", sa.Integer),
        sa.Column("try_number", sa.Integer),
        sa.Column("business_key", sa.String(250)),
        sa.Column("details", sa.Text, nullable=False),
    ]


def _append_only_postgres(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION integrity_audit_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION integrity_audit_refuse_change()"
    )


def _append_only_sqlite(table: str) -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} BEGIN "
            f"SELECT RAISE(ABORT, 'airflow-integrity: {action} on {table} is refused: "
            "the audit trail is append-only'); END"
        )


# The canonical body of an intake row, as airflow_integrity.store.audit.event.canonical_body defines it.
_BODY = """'{"actor":' || COALESCE(to_json(i.actor)::text, 'null')
    || ',"bundle_version":' || COALESCE(to_json(i.bundle_version)::text, 'null')
    || ',"business_key":' || COALESCE(to_json(i.business_key)::text, 'null')
    || ',"dag_id":' || COALESCE(to_json(i.dag_id)::text, 'null')
    || ',"dag_version":' || COALESCE(to_json(i.dag_version)::text, 'null')
    || ',"details":' || i.details
    || ',"event_id":' || to_json(i.event_id)::text
    || ',"event_type":' || to_json(i.event_type)::text
    || ',"map_index":' || COALESCE(i.map_index::text, 'null')
    || ',"recorded_at":"' || to_char(i.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'
    || ',"run_id":' || COALESCE(to_json(i.run_id)::text, 'null')
    || ',"task_id":' || COALESCE(to_json(i.task_id)::text, 'null')
    || ',"try_number":' || COALESCE(i.try_number::text, 'null') || '}'"""

# Chain every committed intake row not yet chained, in one transaction under a transaction-scoped advisory
# lock; return how many rows were chained, or NULL at once if p_wait is false and another session holds
# the lock. Unchained rows can only be those the last chaining statement could not see: written by
# transactions in progress then (chain_xip) or begun after its snapshot (txid >= chain_xmax), so no scan
# grows with the log.
_CHAIN_FUNCTION = f"""
CREATE FUNCTION integrity_audit_chain(p_wait boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql VOLATILE
-- Every statement here has an index path and touches a handful of rows: planning them once per session,
-- for any horizon, must not pick a scan of the whole log.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_seq bigint;
    v_prev text;
    v_xmax bigint;
    v_xip bigint[];
    v_ids bigint[];
    v_bodies text[];
    v_prevs text[] := '{{}}';
    v_hashes text[] := '{{}}';
    v_new_xmax bigint;
    v_new_xip bigint[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'airflow-integrity: audit chaining needs READ COMMITTED isolation, not %',
            current_setting('transaction_isolation');
    END IF;
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock({CHAIN_LOCK_KEY});
    ELSIF NOT pg_try_advisory_xact_lock({CHAIN_LOCK_KEY}) THEN
        RETURN NULL;
    END IF;
    SELECT e.seq, e.hash, e.chain_xmax, e.chain_xip INTO v_seq, v_prev, v_xmax, v_xip
        FROM {EVENT} AS e ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        v_seq := 0; v_prev := repeat('0', 64); v_xmax := 0; v_xip := '{{}}';
    END IF;
    -- One statement, one snapshot: the rows to chain, their bodies, and the horizon the next chaining
    -- starts from. The scalar subquery keeps "not chained yet" an index probe per candidate.
    SELECT array_agg(i.id ORDER BY i.id), array_agg({_BODY} ORDER BY i.id),
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
           ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x)
        INTO v_ids, v_bodies, v_new_xmax, v_new_xip
        FROM {INTAKE} AS i
        WHERE (i.txid >= v_xmax OR i.txid = ANY(v_xip))
          AND (SELECT e.seq FROM {EVENT} AS e WHERE e.intake_id = i.id) IS NULL;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    FOR k IN 1..cardinality(v_ids) LOOP
        v_prevs[k] := v_prev;
        v_prev := encode(
            sha256(convert_to(v_prev || E'\\n' || (v_seq + k)::text || E'\\n' || v_bodies[k], 'UTF8')), 'hex'
        );
        v_hashes[k] := v_prev;
    END LOOP;
    INSERT INTO {EVENT} (seq, body, prev_hash, hash, intake_id, chain_xmax, chain_xip)
        SELECT v_seq + u.k, u.body, u.prev_hash, u.hash, u.intake_id, v_new_xmax, v_new_xip
        FROM unnest(v_ids, v_bodies, v_prevs, v_hashes) WITH ORDINALITY AS u(intake_id, body, prev_hash, hash, k);
    RETURN cardinality(v_ids);
END
$$
"""

# How many of p_ids are chained, and where (as integrity_audit_append reports them). PL/pgSQL keeps their
# plans for the session; index lookups only.
_POSITION_FUNCTIONS = f"""
CREATE FUNCTION integrity_audit_chained(p_ids bigint[]) RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN (SELECT count(*) FROM {EVENT} AS e WHERE e.intake_id = ANY(p_ids));
END
$$;

CREATE FUNCTION integrity_audit_positions(p_ids bigint[], p_new text[]) RETURNS text
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN (
        SELECT json_agg(json_build_array(
                   i.event_id, i.id, to_char(i.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   i.event_id = ANY(p_new), e.seq, e.prev_hash, e.hash))::text
        FROM {INTAKE} AS i
        LEFT JOIN {EVENT} AS e ON e.intake_id = i.id
        WHERE i.id = ANY(p_ids)
    );
END
$$;
"""

# One call per append; the chain lock is never held across a client round trip or a WAL flush:
# 1. commit the events to the intake table; if the chain lock is free, take it and chain them (with
#    everything else pending) in the same transaction;
# 2. otherwise, after that commit: take the chain lock if it is free and chain everything pending, ours
#    included; if another session holds it, wait in shared mode until it commits (every waiter wakes at
#    once) and look whether it took our rows; if not, try again (the fourth time, queue for the lock);
# 3. make it durable: the commits above do not wait for their WAL flush; the last transaction logs a
#    sequence change, so its commit waits for the flush of the WAL up to it, which covers them (the WAL is
#    sequential), and concurrent writers share that flush (group commit).
# p_events is a JSON array of objects with the intake columns; o_result a JSON array with, for each event,
# [event_id, intake id, recorded_at, inserted by this call, seq, prev_hash, hash].
_APPEND_PROCEDURE = f"""
CREATE PROCEDURE integrity_audit_append(p_events text, INOUT o_result text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_ids bigint[];
    v_new text[];
    v_locked boolean;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    v_locked := pg_try_advisory_xact_lock({CHAIN_LOCK_KEY});
    WITH ins AS (
        INSERT INTO {INTAKE} (event_id, event_type, actor, dag_id, dag_version, bundle_version, run_id,
                              task_id, map_index, try_number, business_key, details)
        SELECT u.event_id, u.event_type, u.actor, u.dag_id, u.dag_version, u.bundle_version, u.run_id,
               u.task_id, u.map_index, u.try_number, u.business_key, u.details
        FROM ROWS FROM (json_to_recordset(p_events::json) AS (
                 event_id text, event_type text, actor text, dag_id text, dag_version text,
                 bundle_version text, run_id text, task_id text, map_index int, try_number int,
                 business_key text, details text)) WITH ORDINALITY
             AS u(event_id, event_type, actor, dag_id, dag_version, bundle_version, run_id, task_id,
                  map_index, try_number, business_key, details, ord)
        ORDER BY u.ord
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id, event_id
    )
    SELECT array_agg(ins.id), COALESCE(array_agg(ins.event_id), '{{}}') INTO v_ids, v_new FROM ins;
    IF COALESCE(cardinality(v_ids), 0) < json_array_length(p_events::json) THEN
        -- Some were recorded by an earlier call (a retry): report those too.
        SELECT array_agg((SELECT i.id FROM {INTAKE} AS i WHERE i.event_id = u.event_id)) INTO v_ids
            FROM json_to_recordset(p_events::json) AS u(event_id text);
    END IF;
    IF v_locked THEN
        PERFORM integrity_audit_chain(true);
    END IF;
    COMMIT;
    IF NOT v_locked THEN
        FOR v_round IN 1..4 LOOP
            PERFORM set_config('synchronous_commit', 'off', true);
            EXIT WHEN integrity_audit_chain(v_round = 4) IS NOT NULL;
            PERFORM pg_advisory_xact_lock_shared({CHAIN_LOCK_KEY});
            EXIT WHEN integrity_audit_chained(v_ids) = cardinality(v_ids);
            COMMIT;
        END LOOP;
        COMMIT;
    END IF;
    PERFORM setval('{FLUSH_SEQUENCE}', 1);
    o_result := integrity_audit_positions(v_ids, v_new);
END
$$
"""


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres and bind.exec_driver_sql("SHOW server_encoding").scalar() != "UTF8":
        raise RuntimeError(
            "The integrity store's PostgreSQL database must use the UTF8 encoding (the audit trail hashes UTF-8 "
            "text). Create it with `CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0`."
        )
    chain_state = (
        [
            sa.Column("intake_id", sa.BigInteger, unique=True),
            # Snapshot horizon of the batch that chained this row: where the next batch looks for intake rows.
            sa.Column("chain_xmax", sa.BigInteger),
            sa.Column("chain_xip", postgresql.ARRAY(sa.BigInteger)),
        ]
        if postgres
        else []
    )
    op.create_table(
        EVENT,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        *([sa.Column("doc", postgresql.JSONB, sa.Computed("body::jsonb", persisted=True))] if postgres else []),
        *chain_state,
        sa.CheckConstraint("seq > 0", name="ck_integrity_audit_event_seq_positive"),
    )
    for index, fields in INDEXED.items():
        # On PostgreSQL the intake table keeps event ids unique; SQLite appends look events up by id.
        if index == "event_id" and postgres:
            continue
        expressions = ", ".join(_field(name, postgres) for name in fields)
        unique = "UNIQUE " if index == "event_id" else ""
        op.execute(f"CREATE {unique}INDEX ix_{EVENT}_{index} ON {EVENT} ({expressions})")

    op.create_table(
        CHECKPOINT,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(27), nullable=False),
        sa.Column("key_id", sa.String(100), nullable=False),
        sa.Column("algorithm", sa.String(20), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_index("ix_integrity_audit_checkpoint_seq", CHECKPOINT, ["seq"])

    if not postgres:
        for table in (EVENT, CHECKPOINT):
            _append_only_sqlite(table)
        return

    # Writers commit here in parallel; a short critical section then moves rows into the chain.
    op.create_table(
        INTAKE,
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "txid", sa.BigInteger, nullable=False, server_default=sa.text("(pg_current_xact_id()::text::bigint)")
        ),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")
        ),
        *_intake_columns(),
    )
    op.create_index("ix_integrity_audit_intake_txid", INTAKE, ["txid"])
    op.execute(
        """
        CREATE FUNCTION integrity_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'airflow-integrity: % on % is refused: the audit trail is append-only',
                TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in (EVENT, INTAKE, CHECKPOINT):
        _append_only_postgres(table)
    op.execute(f"CREATE SEQUENCE {FLUSH_SEQUENCE}")
    op.execute(_CHAIN_FUNCTION)
    op.execute(_POSITION_FUNCTIONS)
    op.execute(_APPEND_PROCEDURE)


def downgrade() -> None:
    raise RuntimeError(
        "The audit trail cannot be downgraded: that would delete recorded events. Keep revision a1, or "
        "archive the database and create a new store."
    )
