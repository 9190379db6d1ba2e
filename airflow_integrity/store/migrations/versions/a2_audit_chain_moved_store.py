"""Audit trail: chaining stays exact after the store is moved to another PostgreSQL cluster.

Migration a1 finds the intake rows not chained yet from the snapshot horizon stored with the last chained
event: rows whose ``txid`` is at or above its ``chain_xmax`` or in its ``chain_xip``. That is exact within
one cluster, whose transaction ids only grow. A store moved to another cluster (``pg_dump`` and
``pg_restore`` or ``psql``, logical replication) keeps the old cluster's horizon while new rows get the new
cluster's transaction ids: below the horizon in a fresh cluster, so they would never be chained (and verify
would not count them as pending).

From this revision each chaining also stores the transaction that chained (``chain_txid``) and looks at
two facts before trusting the horizon:

* a row keeps the transaction id that wrote it (``xmin``, the low 32 bits of ``chain_txid``) while it stays
  in its cluster, vacuum freezing included; a restore or a logical copy writes the rows anew, so the head
  event's ``xmin`` then differs from its ``chain_txid``;
* the current snapshot's ``xmax`` is never below a stored ``chain_xmax`` within one cluster; it is below in
  a cluster whose transaction ids are behind the old one.

If either shows that the transaction-id history changed (or the head was chained before this revision, so
has no ``chain_txid``), the chaining takes every intake row that no event names (an anti-join on the
unique index of ``intake_id``) and stores the new cluster's horizon with the batch: the next chaining uses
the horizon again (a chaining that finds nothing has no event to store it with, so the search is exact until
one chains an event). Otherwise nothing changes: the checks compare values the chaining reads anyway (the
head row, the snapshot of its search).

A store restored into a cluster whose transaction ids are already past the old horizon would be chained
correctly by the horizon alone: every row written there is above it. The first check matters for a cluster
that was behind at the restore and runs past the old horizon before the next chaining: rows recorded in
between are below the horizon, and only the rewritten head shows that the store moved. What neither check
can see is a restore whose own transaction id happens to equal, modulo 2**32, the one that chained the head,
into a cluster that then runs past the old horizon before any chaining: rows recorded in between whose
transaction ids fall between those two would be missed (at most as many as the old cluster began while it
chained that head, none when its transaction id came after its snapshot).

SQLite chains every event as it is recorded: nothing changes there; the revision keeps the schema revision
the same on both backends.

Revision ID: a2
Revises: a1
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "a2"
down_revision = "a1"
branch_labels = None
depends_on = None

EVENT = "integrity_audit_event"
INTAKE = "integrity_audit_intake"
# The same advisory lock as migration a1's functions.
CHAIN_LOCK_KEY = 0x1A7E_A0D1

# The canonical body of an intake row, as airflow_integrity.store.audit.event.canonical_body defines it
# (unchanged since migration a1).
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


def _pending_select(where: str) -> str:
    """The rows to chain, their bodies, and the horizon the next chaining starts from, in one statement (one
    snapshot); ``where`` says which intake rows."""
    return f"""SELECT array_agg(i.id ORDER BY i.id), array_agg({_BODY} ORDER BY i.id),
               pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
               ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x)
            INTO v_ids, v_bodies, v_new_xmax, v_new_xip
            FROM {INTAKE} AS i
            WHERE {where};"""


# The horizon: only rows the last chaining could not see; the scalar subquery keeps "not chained yet" an
# index probe per candidate.
_SINCE_HORIZON = (
    f"(i.txid >= v_xmax OR i.txid = ANY(v_xip)) "
    f"AND (SELECT e.seq FROM {EVENT} AS e WHERE e.intake_id = i.id) IS NULL"
)
# Every intake row no event names: an anti-join on the unique index of intake_id.
_NOT_CHAINED = f"NOT EXISTS (SELECT 1 FROM {EVENT} AS e WHERE e.intake_id = i.id)"

# As in migration a1, with the check of the horizon's transaction-id history described above.
_CHAIN_FUNCTION = f"""
CREATE OR REPLACE FUNCTION integrity_audit_chain(p_wait boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql VOLATILE
-- Every statement of the usual path has an index path and touches a handful of rows: planning them once
-- per session, for any horizon, must not pick a scan of the whole log.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_seq bigint;
    v_prev text;
    v_xmax bigint;
    v_xip bigint[];
    v_same_history boolean;
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
    -- The head row keeps the xmin of the transaction that chained it while the store stays in its cluster.
    SELECT e.seq, e.hash, e.chain_xmax, e.chain_xip, e.chain_txid % 4294967296 = e.xmin::text::bigint
        INTO v_seq, v_prev, v_xmax, v_xip, v_same_history
        FROM {EVENT} AS e ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        v_seq := 0; v_prev := repeat('0', 64); v_xmax := 0; v_xip := '{{}}'; v_same_history := true;
    END IF;
    IF v_same_history THEN
        {_pending_select(_SINCE_HORIZON)}
    END IF;
    -- Its snapshot's xmax (v_new_xmax) below the stored one: another cluster's horizon; NULL (a head chained
    -- before revision a2, or without a horizon) takes the exact search too.
    IF v_same_history IS NOT TRUE OR NOT v_new_xmax >= v_xmax THEN
        RAISE LOG 'airflow-integrity: the audit chain''s horizon (xmax %) is not from this cluster''s '
            'transaction-id history (the store was restored or copied from another cluster, or its head was '
            'chained before revision a2): looking for unchained events by an exact search; the events it '
            'chains carry this cluster''s horizon', v_xmax;
        {_pending_select(_NOT_CHAINED)}
    END IF;
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
    INSERT INTO {EVENT} (seq, body, prev_hash, hash, intake_id, chain_xmax, chain_xip, chain_txid)
        SELECT v_seq + u.k, u.body, u.prev_hash, u.hash, u.intake_id, v_new_xmax, v_new_xip,
               pg_current_xact_id()::text::bigint
        FROM unnest(v_ids, v_bodies, v_prevs, v_hashes) WITH ORDINALITY AS u(intake_id, body, prev_hash, hash, k);
    RETURN cardinality(v_ids);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The transaction that chained the row (its xmin as long as the store stays in its cluster).
    op.execute(f"ALTER TABLE {EVENT} ADD COLUMN chain_txid bigint")
    op.execute(_CHAIN_FUNCTION)


def downgrade() -> None:
    raise RuntimeError(
        "The audit trail cannot be downgraded: revision a1's chaining would miss events recorded after the "
        "store moved to another PostgreSQL cluster. Keep revision a2."
    )
