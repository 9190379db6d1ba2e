"""Audit trail: the intake table takes its times from the database and refuses what cannot be chained;
chaining never signs a row changed in place, and one bad row never stops it.

On PostgreSQL, events are recorded into the intake table and chained in batches (migration a1). Three
weaknesses are closed here:

* A plain ``INSERT`` into the intake table could choose its ``recorded_at`` (a back-dated event) and its
  ``txid`` (below the chaining horizon, so that the row was never chained and ``verify`` never counted it).
  A trigger now sets both from the database (``clock_timestamp()``, the inserting transaction) whatever the
  insert says, and refuses ``details`` that are not a JSON object: such a row made every later chaining fail
  (the chain's generated ``doc`` column could not read the body), so nothing was chained any more.
* Chaining took every pending row as it found it, so a row edited while it waited (with the append-only
  trigger switched off) was chained, and then verified, exported and signed as if it were the original.
  Chaining now leaves such a row out (its row version was written by another transaction than the one that
  recorded it; :mod:`airflow_integrity.store.audit.verify`), as it leaves out a row whose details are not JSON
  (written before this revision, or with the triggers off): neither joins the chain, both stay visible to
  ``verify`` as pending rows it names, and the rows after them are chained as usual. A left-out row is kept
  within the horizon of the next chaining by adding its transaction to the stored in-progress list.
* ``business_key`` is as long as the longest idempotency key (512 characters), so that every key the ledger
  accepts names its audit events.

SQLite chains each event when it is recorded and has no intake table: nothing changes there.

Revision ID: a3
Revises: a2
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "a3"
down_revision = "a2"
branch_labels = None
depends_on = None

EVENT = "integrity_audit_event"
INTAKE = "integrity_audit_intake"
CHECKPOINT = "integrity_audit_checkpoint"
# The same advisory lock as migration a1's functions.
CHAIN_LOCK_KEY = 0x1A7E_A0D1

# The body an intake row will be chained with, and its seal: SHA-256 of the body and the row's transaction,
# set when the row is inserted. A row whose seal no longer matches was changed in place after it was recorded.
# (SQL functions on the row type: the planner inlines them.)
_SEAL_FUNCTIONS = f"""
CREATE FUNCTION integrity_audit_body(i {INTAKE}) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT {{body}}
$$;
CREATE FUNCTION integrity_audit_seal(i {INTAKE}) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(integrity_audit_body(i) || E'\\n' || i.txid::text, 'UTF8')), 'hex')
$$;
"""

_STAMP_FUNCTION = f"""
CREATE FUNCTION integrity_audit_intake_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.recorded_at := clock_timestamp();
    NEW.txid := pg_current_xact_id()::text::bigint;
    -- Casting text that is not JSON raises invalid_text_representation, naming the trigger.
    IF jsonb_typeof(NEW.details::jsonb) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'airflow-integrity: the details of audit event % must be a JSON object', NEW.event_id
            USING ERRCODE = 'invalid_text_representation';
    END IF;
    NEW.seal := integrity_audit_seal(NEW);
    RETURN NEW;
END
$$;
CREATE TRIGGER {INTAKE}_stamp BEFORE INSERT ON {INTAKE}
    FOR EACH ROW EXECUTE FUNCTION integrity_audit_intake_stamp();
"""

# Whether text is a JSON value PostgreSQL can store (jsonb): chaining leaves out a row whose details are not,
# instead of failing on it. From PostgreSQL 16 a built-in test; before, a cast that may fail (no write: the
# subtransaction of its exception block takes no transaction id, so chained rows keep their xmin).
_JSON_OK_BUILTIN = """
CREATE FUNCTION integrity_audit_json_ok(p_text text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_input_is_valid(p_text, 'jsonb');
"""
_JSON_OK_CAST = """
CREATE FUNCTION integrity_audit_json_ok(p_text text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM p_text::jsonb;
    RETURN true;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;
"""

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
    """The rows to chain (ids, bodies, transactions, whether each row is the version its own transaction
    wrote) and the horizon the next chaining starts from, in one statement (one snapshot)."""
    return f"""SELECT array_agg(i.id ORDER BY i.id), array_agg(integrity_audit_body(i) ORDER BY i.id),
               array_agg(i.txid ORDER BY i.id),
               array_agg(CASE WHEN i.seal IS NULL
                              THEN NOT v_same_history OR i.txid % 4294967296 = i.xmin::text::bigint
                              ELSE i.seal = integrity_audit_seal(i) END
                         AND integrity_audit_json_ok(i.details) ORDER BY i.id),
               pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
               ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x)
            INTO v_ids, v_bodies, v_txids, v_intact, v_new_xmax, v_new_xip
            FROM {INTAKE} AS i
            WHERE {where};"""


# As in migration a2 (see its docstring for the horizon and the exact search after a move).
_SINCE_HORIZON = (
    f"(i.txid >= v_xmax OR i.txid = ANY(v_xip)) "
    f"AND (SELECT e.seq FROM {EVENT} AS e WHERE e.intake_id = i.id) IS NULL"
)
_NOT_CHAINED = f"NOT EXISTS (SELECT 1 FROM {EVENT} AS e WHERE e.intake_id = i.id)"

_CHAIN_FUNCTION = f"""
CREATE OR REPLACE FUNCTION integrity_audit_chain(p_wait boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql VOLATILE
-- Only this function adds events to the chain, with its owner's rights: the role the components connect as
-- needs (and, set up by store.roles, has) no right to insert into the chain itself.
SECURITY DEFINER
SET search_path = {{schema}}, pg_temp
-- Every statement of the usual path has an index path and touches a handful of rows: planning them once
-- per session, for any horizon, must not pick a scan of the whole log.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_seq bigint;
    v_head text;
    v_prev text;
    v_xmax bigint;
    v_xip bigint[];
    v_same_history boolean;
    v_ids bigint[];
    v_bodies text[];
    v_txids bigint[];
    v_intact boolean[];
    v_new_xmax bigint;
    v_new_xip bigint[];
    v_n integer;
    v_chain_ids bigint[] := '{{}}';
    v_chain_bodies text[] := '{{}}';
    v_prevs text[] := '{{}}';
    v_hashes text[] := '{{}}';
    v_left_out bigint[];
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
        INTO v_seq, v_head, v_xmax, v_xip, v_same_history
        FROM {EVENT} AS e ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        v_seq := 0; v_head := repeat('0', 64); v_xmax := 0; v_xip := '{{}}'; v_same_history := true;
    END IF;
    IF v_same_history THEN
        {_pending_select(_SINCE_HORIZON)}
    END IF;
    IF v_same_history IS NOT TRUE OR NOT v_new_xmax >= v_xmax THEN
        RAISE LOG 'airflow-integrity: the audit chain''s horizon (xmax %) is not from this cluster''s '
            'transaction-id history (the store was restored or copied from another cluster, or its head was '
            'chained before revision a2): looking for unchained events by an exact search; the events it '
            'chains carry this cluster''s horizon', v_xmax;
        -- Rows rewritten by the move cannot be told from rows changed in place: every one is taken.
        v_same_history := false;
        {_pending_select(_NOT_CHAINED)}
    END IF;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    v_n := 0; v_prev := v_head; v_left_out := '{{}}';
    FOR k IN 1..cardinality(v_ids) LOOP
        IF NOT v_intact[k] THEN
            v_left_out := v_left_out || v_txids[k];
            CONTINUE;
        END IF;
        v_n := v_n + 1;
        v_chain_ids[v_n] := v_ids[k];
        v_chain_bodies[v_n] := v_bodies[k];
        v_prevs[v_n] := v_prev;
        v_prev := encode(
            sha256(convert_to(v_prev || E'\\n' || (v_seq + v_n)::text || E'\\n' || v_bodies[k], 'UTF8')), 'hex'
        );
        v_hashes[v_n] := v_prev;
    END LOOP;
    IF v_n > 0 THEN
        INSERT INTO {EVENT} (seq, body, prev_hash, hash, intake_id, chain_xmax, chain_xip, chain_txid)
            SELECT v_seq + u.k, u.body, u.prev_hash, u.hash, u.intake_id, v_new_xmax, v_new_xip || v_left_out,
                   pg_current_xact_id()::text::bigint
            FROM unnest(v_chain_ids, v_chain_bodies, v_prevs, v_hashes) WITH ORDINALITY
                 AS u(intake_id, body, prev_hash, hash, k);
    END IF;
    IF cardinality(v_left_out) > 0 THEN
        RAISE WARNING 'airflow-integrity: % recorded audit event(s) left unchained: changed in place after they '
            'were recorded, or details that are not JSON; `airflow integrity audit verify` names them',
            cardinality(v_left_out);
    END IF;
    RETURN v_n;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {INTAKE} ALTER COLUMN business_key TYPE varchar(512)")
    op.execute(f"ALTER TABLE {INTAKE} ADD COLUMN seal varchar(64)")
    op.execute(_SEAL_FUNCTIONS.format(body=_BODY))
    op.execute(_STAMP_FUNCTION)
    version = int(op.get_bind().exec_driver_sql("SHOW server_version_num").scalar())
    op.execute(_JSON_OK_BUILTIN if version >= 160000 else _JSON_OK_CAST)
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    op.execute(_CHAIN_FUNCTION.replace("{schema}", schema))
    # Checkpoint ids: a 64-bit identity instead of a 32-bit serial, whose sequence a role allowed to insert could
    # otherwise run to its end with nextval() and so stop every later checkpoint.
    op.execute(f"ALTER TABLE {CHECKPOINT} ALTER COLUMN id DROP DEFAULT")
    op.execute(f"DROP SEQUENCE IF EXISTS {CHECKPOINT}_id_seq")
    op.execute(f"ALTER TABLE {CHECKPOINT} ALTER COLUMN id TYPE bigint")
    start = op.get_bind().exec_driver_sql(f"SELECT COALESCE(max(id), 0) + 1 FROM {CHECKPOINT}").scalar()
    op.execute(
        f"ALTER TABLE {CHECKPOINT} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {start})"
    )


def downgrade() -> None:
    raise RuntimeError(
        "The audit trail cannot be downgraded: revision a2's chaining would chain rows changed in place and stop "
        "at a row that is not JSON. Keep revision a3."
    )
