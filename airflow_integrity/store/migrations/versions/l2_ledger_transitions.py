"""Idempotency ledger: rows change only by the ledger's own transitions; fingerprints carry their scheme.

Migration l1 recorded a history row for some column changes only: a plain SQL ``UPDATE`` of an inline result,
of a completed key's ``expires_at`` or of a failed key's ``retryable`` left no trace, and the next claim then
replayed the altered result or ran the work again. From this revision the database itself checks every write
to ``integrity_ledger`` against the transitions the ledger makes (:mod:`airflow_integrity.store.ledger.sql`):

``claim``
    a new row: in progress, fencing token 1, no result, error or release; or, on a key that may be claimed
    (released, expired, failed with retry, or held by a lease that has expired), fencing token + 1 and attempts
    + 1, the result, error and release cleared, and fingerprint, origin and time to live kept unless the key
    starts afresh (released or expired);
``renew``
    an in-progress key's lease moved later, nothing else changed;
``complete`` / ``fail``
    an in-progress key settled by its holder (same fencing token): completed with a result and its SHA-256,
    or failed with ``retryable`` set; nothing that decides a later claim changes;
``release``
    a completed or failed key (or one whose lease expired) re-opened by a named person with a reason.

Any other ``UPDATE`` (and every ``INSERT`` of another row, every ``DELETE``, and on PostgreSQL ``TRUNCATE``) is
refused, as are changes to the blobs of large results. Every transition but a lease renewal writes its history
row, as before (on PostgreSQL the function that checks an update now writes it). Someone who can drop or
disable the triggers (the tables' owner; anyone who can write an SQLite file) is still caught on replay: the
ledger checks every stored result, inline ones included, against its recorded SHA-256.

``fingerprint_scheme`` records the canonical form of each key's fingerprint
(:func:`airflow_integrity.store.ledger.codec.inputs_digest`): 1 for keys claimed before this revision, 2 after.

Revision ID: l2
Revises: l1
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "l2"
down_revision = "l1"
branch_labels = None
depends_on = None

LEDGER = "integrity_ledger"
BLOB = "integrity_ledger_blob"
# What the ledger notes in a key's history without changing it (ClaimOutcome and StaleHolderError events).
NOTE_EVENTS = ("replayed", "fingerprint_mismatch", "stale_holder_refused")
_RESULT = ("result_json", "result_ref", "result_size", "result_sha256")
_REFUSED = (
    "airflow-integrity: integrity_ledger rows change only through the transitions of the ledger (claim, lease "
    "renewal, complete, fail, release), so this change is refused. A person re-opens a key with `airflow "
    "integrity ledger release KEY --reason ...`"
)
_BLOB_REFUSED = (
    "airflow-integrity: integrity_ledger_blob is append-only: stored results cannot be changed or deleted"
)
_HISTORY_COLUMNS = (
    "ledger_id, namespace, idempotency_key, event, at, state, previous_state, fencing_token, fingerprint, "
    "holder, previous_holder, person, reason, error, result_sha256, result_size"
)
# As in migration l1: the history row of a transition, and how a change made by hand would be named.
_UPDATE_VALUES = (
    "NEW.id, NEW.namespace, NEW.idempotency_key, CASE WHEN NEW.last_event = OLD.last_event AND "
    "NEW.fencing_token = OLD.fencing_token THEN 'altered_outside_ledger' ELSE NEW.last_event END, NEW.updated_at, "
    "NEW.state, OLD.state, NEW.fencing_token, NEW.fingerprint, NEW.holder, OLD.holder, NEW.last_person, "
    "NEW.last_reason, NEW.error, NEW.result_sha256, NEW.result_size"
)


class _Rules:
    """The transitions as SQL conditions on ``OLD`` and ``NEW`` for one dialect."""

    def __init__(self, postgres: bool) -> None:
        self.is_ = "IS NOT DISTINCT FROM" if postgres else "IS"
        self.now = "now()" if postgres else "strftime('%Y-%m-%d %H:%M:%f', 'now')"

    def same(self, *columns: str) -> str:
        return " AND ".join(f"NEW.{c} {self.is_} OLD.{c}" for c in columns)

    @staticmethod
    def null(*columns: str) -> str:
        return " AND ".join(f"NEW.{c} IS NULL" for c in columns)

    def renewal(self) -> str:
        kept = (
            "fingerprint", "fingerprint_scheme", "state", "retryable", "holder", "origin", "previous_state",
            "previous_holder", "fencing_token", "lease_seconds", "attempts", *_RESULT, "error", "last_event",
            "last_person", "last_reason", "updated_at", "completed_at", "expires_at",
        )  # fmt: skip
        return (
            f"OLD.state = 'in_progress' AND {self.same(*kept)} "
            "AND NEW.lease_expires_at IS NOT NULL AND NEW.lease_expires_at >= OLD.lease_expires_at"
        )

    def completion(self) -> str:
        kept = (
            "fencing_token", "fingerprint", "fingerprint_scheme", "holder", "origin", "previous_state",
            "previous_holder", "lease_seconds", "attempts", "retryable", "error", "last_person", "last_reason",
            "expires_at",
        )  # fmt: skip
        return (
            f"OLD.state = 'in_progress' AND NEW.state = 'completed' AND NEW.last_event = 'completed' "
            f"AND {self.same(*kept)} AND NEW.lease_expires_at IS NULL AND NEW.completed_at IS NOT NULL "
            "AND NEW.result_sha256 IS NOT NULL AND NEW.result_size IS NOT NULL "
            "AND (NEW.result_json IS NULL) <> (NEW.result_ref IS NULL)"
        )

    def failure(self) -> str:
        kept = (
            "fencing_token", "fingerprint", "fingerprint_scheme", "holder", "origin", "previous_state",
            "previous_holder", "lease_seconds", "attempts", *_RESULT, "last_person", "last_reason",
            "completed_at", "expires_at",
        )  # fmt: skip
        return (
            f"OLD.state = 'in_progress' AND NEW.state = 'failed' AND NEW.last_event = 'failed' "
            f"AND {self.same(*kept)} AND NEW.retryable IS NOT NULL AND NEW.lease_expires_at IS NULL"
        )

    def release(self) -> str:
        kept = (
            "fencing_token", "fingerprint", "fingerprint_scheme", "holder", "origin", "lease_seconds",
            "attempts", *_RESULT, "error", "completed_at", "expires_at",
        )  # fmt: skip
        return (
            f"(OLD.state IN ('completed', 'failed') OR (OLD.state = 'in_progress' "
            f"AND OLD.lease_expires_at <= {self.now})) "
            f"AND NEW.state = 'released' AND NEW.last_event = 'released' AND {self.same(*kept)} "
            f"AND NEW.previous_state = OLD.state AND NEW.previous_holder {self.is_} OLD.holder "
            "AND NEW.retryable IS NULL AND NEW.lease_expires_at IS NULL "
            "AND NEW.last_person IS NOT NULL AND NEW.last_reason IS NOT NULL"
        )

    def claim(self) -> str:
        fresh = (
            f"(OLD.state = 'released' OR (OLD.expires_at IS NOT NULL AND OLD.expires_at <= {self.now} "
            f"AND NOT (OLD.state = 'in_progress' AND OLD.lease_expires_at > {self.now})))"
        )
        claimable = (
            f"({self.same('fingerprint', 'fingerprint_scheme', 'origin', 'expires_at')} "
            "AND ((OLD.state = 'failed' AND OLD.retryable) "
            f"OR (OLD.state = 'in_progress' AND OLD.lease_expires_at <= {self.now})))"
        )
        return (
            "NEW.fencing_token = OLD.fencing_token + 1 AND NEW.attempts = OLD.attempts + 1 "
            "AND NEW.state = 'in_progress' AND NEW.retryable IS NULL AND NEW.previous_state = OLD.state "
            f"AND NEW.previous_holder {self.is_} OLD.holder "
            f"AND {self.null(*_RESULT, 'completed_at', 'error', 'last_person', 'last_reason')} "
            "AND NEW.lease_expires_at IS NOT NULL "
            "AND NEW.last_event = CASE WHEN OLD.state = 'in_progress' THEN 'takeover' ELSE 'claimed' END "
            f"AND ({fresh} OR {claimable})"
        )

    def update(self) -> str:
        transitions = " OR ".join(
            f"({rule})"
            for rule in (self.renewal(), self.completion(), self.failure(), self.release(), self.claim())
        )
        return f"{self.same('id', 'namespace', 'idempotency_key', 'created_at')} AND ({transitions})"

    def insert(self) -> str:
        cleared = (
            *_RESULT,
            "completed_at",
            "error",
            "last_person",
            "last_reason",
            "previous_state",
            "previous_holder",
        )
        return (
            "NEW.state = 'in_progress' AND NEW.fencing_token = 1 AND NEW.attempts = 1 "
            "AND NEW.last_event = 'claimed' AND NEW.retryable IS NULL AND NEW.lease_expires_at IS NOT NULL "
            f"AND {self.null(*cleared)}"
        )


def _postgres(rules: _Rules) -> None:
    # PL/pgSQL functions rather than trigger WHEN conditions: a function's expressions are planned once per
    # session, a WHEN condition is set up for every statement (measured: checks as WHEN conditions cost a fifth
    # of the raw claim + complete rate, as functions nothing measurable). An update's history row is written by
    # the same function, replacing migration l1's AFTER UPDATE trigger.
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_check_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF ({rules.insert()}) IS NOT TRUE THEN
                RAISE EXCEPTION 'INSERT on {LEDGER}: {_REFUSED}' USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_check_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF ({rules.update()}) IS NOT TRUE THEN
                RAISE EXCEPTION 'UPDATE on {LEDGER}: {_REFUSED}' USING ERRCODE = 'check_violation';
            END IF;
            IF ({rules.renewal()}) IS NOT TRUE THEN
                INSERT INTO integrity_ledger_history ({_HISTORY_COLUMNS}) VALUES ({_UPDATE_VALUES});
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% on %: {_REFUSED}', TG_OP, TG_TABLE_NAME USING ERRCODE = 'check_violation';
        END $$
        """
    )
    # A note of a decision that changes nothing (a replay, a refusal), written for the caller: only the notes
    # the ledger writes, never a transition (those are written by the check of the change itself).
    allowed = ", ".join(f"'{event}'" for event in NOTE_EVENTS)
    names = ", ".join(NOTE_EVENTS)
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_note(
            p_namespace text, p_key text, p_event text, p_fingerprint text, p_holder text, p_details text
        ) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            IF p_event IS NULL OR p_event NOT IN ({allowed}) THEN
                RAISE EXCEPTION 'airflow-integrity: % is not a note of the idempotency ledger (notes: {names}); '
                    'transitions are recorded by the ledger itself', p_event USING ERRCODE = 'check_violation';
            END IF;
            INSERT INTO integrity_ledger_history (ledger_id, namespace, idempotency_key, event, at, state,
                fencing_token, fingerprint, holder, result_sha256, result_size, details)
            SELECT id, namespace, idempotency_key, p_event, now(), state, fencing_token, p_fingerprint, p_holder,
                result_sha256, result_size, p_details
            FROM {LEDGER} WHERE namespace = p_namespace AND idempotency_key = p_key;
        END $$
        """
    )
    # History rows are written only by these functions, with their owner's rights: a runtime role that may
    # change a key through its transitions needs no right to write the history itself (see store.roles).
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    for signature in (
        "integrity_ledger_note(text, text, text, text, text, text)",
        "integrity_ledger_check_update()",
        "integrity_ledger_record_history()",
    ):
        op.execute(f"ALTER FUNCTION {signature} SECURITY DEFINER SET search_path = {schema}, pg_temp")
    op.execute(f"DROP TRIGGER integrity_ledger_history_on_update ON {LEDGER}")
    op.execute(
        f"CREATE TRIGGER integrity_ledger_transitions_insert BEFORE INSERT ON {LEDGER} "
        "FOR EACH ROW EXECUTE FUNCTION integrity_ledger_check_insert()"
    )
    op.execute(
        f"CREATE TRIGGER integrity_ledger_transitions_update BEFORE UPDATE ON {LEDGER} "
        "FOR EACH ROW EXECUTE FUNCTION integrity_ledger_check_update()"
    )
    op.execute(
        f"CREATE TRIGGER integrity_ledger_no_delete BEFORE DELETE ON {LEDGER} "
        "FOR EACH ROW EXECUTE FUNCTION integrity_ledger_refuse_change()"
    )
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_blob_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{_BLOB_REFUSED} (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        f"CREATE TRIGGER integrity_ledger_blob_append_only BEFORE UPDATE OR DELETE ON {BLOB} "
        "FOR EACH ROW EXECUTE FUNCTION integrity_ledger_blob_refuse_change()"
    )
    refusals = ((LEDGER, "integrity_ledger_refuse_change"), (BLOB, "integrity_ledger_blob_refuse_change"))
    for table, function in refusals:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def _sqlite(rules: _Rules) -> None:
    # A condition that is NULL (a column set to NULL by hand) counts as false: the change is refused.
    for name, event, condition in (
        ("integrity_ledger_transitions_insert", "INSERT", rules.insert()),
        ("integrity_ledger_transitions_update", "UPDATE", rules.update()),
    ):
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON {LEDGER} WHEN NOT coalesce(({condition}), 0) "
            f"BEGIN SELECT RAISE(ABORT, '{event} on {LEDGER}: {_REFUSED}'); END"
        )
    op.execute(
        f"CREATE TRIGGER integrity_ledger_no_delete BEFORE DELETE ON {LEDGER} "
        f"BEGIN SELECT RAISE(ABORT, 'DELETE on {LEDGER}: {_REFUSED}'); END"
    )
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER integrity_ledger_blob_no_{action.lower()} BEFORE {action} ON {BLOB} "
            f"BEGIN SELECT RAISE(ABORT, '{_BLOB_REFUSED} ({action} refused)'); END"
        )
    op.execute("DROP TRIGGER integrity_ledger_history_on_update")
    op.execute(
        f"CREATE TRIGGER integrity_ledger_history_on_update AFTER UPDATE ON {LEDGER} "
        f"WHEN NOT coalesce(({rules.renewal()}), 0) BEGIN "
        f"INSERT INTO integrity_ledger_history ({_HISTORY_COLUMNS}) VALUES ({_UPDATE_VALUES}); END"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Keys claimed so far were fingerprinted in scheme 1; every claim from now on names its scheme.
    op.execute(f"ALTER TABLE {LEDGER} ADD COLUMN fingerprint_scheme integer NOT NULL DEFAULT 1")
    rules = _Rules(postgres)
    if postgres:
        _postgres(rules)
    else:
        _sqlite(rules)


def downgrade() -> None:
    raise RuntimeError(
        "The idempotency ledger's transition checks cannot be downgraded: without them a plain SQL UPDATE could "
        "change a stored result or re-open a key without a trace. Keep revision l2."
    )
