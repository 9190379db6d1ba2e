"""Properties of the hash chain, for arbitrary events: it verifies, and any single edit is caught at its event."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent, canonical_json
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.schema import EVENT
from airflow_integrity.store.audit.verify import HASH_MISMATCH, verify
from tests.store.audit.test_tamper import tampering

# Any Unicode text a database can hold (no NUL, no lone surrogates): quotes, backslashes, control
# characters, non-ASCII and astral characters all go through the canonical form.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
NAME = st.one_of(st.none(), TEXT)
# Inside details, text that looks like a JSON escape of NUL (refused as a character) must still pass.
DETAIL_TEXT = TEXT | st.sampled_from(["\\u0000", "a\\\\u0000b", '"\\'])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | DETAIL_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(DETAIL_TEXT, inner, max_size=4),
    max_leaves=12,
)
EVENTS = st.builds(
    AuditEvent,
    event_type=TEXT.filter(str.strip),
    actor=TEXT.filter(str.strip),
    dag_id=NAME,
    dag_version=NAME,
    bundle_version=NAME,
    run_id=NAME,
    task_id=NAME,
    map_index=st.one_of(st.none(), st.integers(-1, 10_000)),
    try_number=st.one_of(st.none(), st.integers(0, 100)),
    business_key=NAME,
    details=st.dictionaries(TEXT, JSON, max_size=5),
)
FIELDS = (
    "actor",
    "business_key",
    "dag_id",
    "event_type",
    "map_index",
    "run_id",
    "task_id",
    "try_number",
    "details",
)
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

pytestmark = pytest.mark.integration


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_canonical_body_is_the_sorted_compact_json_of_the_fields(event: AuditEvent) -> None:
    prepared = event.prepare()
    fields: dict[str, Any] = {**prepared.columns(), "recorded_at": "2026-11-28T00:00:00.000000Z"}
    fields["details"] = json.loads(prepared.details_json)
    expected = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert prepared.body("2026-11-28T00:00:00.000000Z") == expected


@SETTINGS
@given(events=st.lists(EVENTS, min_size=1, max_size=6), one_by_one=st.booleans())
def test_any_appended_events_verify_and_read_back_unchanged(
    store: IntegrityStore, events: list[AuditEvent], one_by_one: bool
) -> None:
    log = AuditLog(store)
    records = [log.append(e) for e in events] if one_by_one else log.append_many(events)
    assert [r.seq for r in records] == list(range(records[0].seq, records[0].seq + len(events)))
    stored = {seq: record for seq, record in iter_records(store) if seq >= records[0].seq}
    for event, record in zip(events, records, strict=True):
        # The body the database built (PostgreSQL) or Python built (SQLite) re-computes to the same hash.
        assert stored[record.seq] == record
        assert record.computed_hash() == record.hash
        assert (record.actor, record.business_key, record.details) == (
            event.actor,
            event.business_key,
            json.loads(canonical_json(dict(event.details))),
        )
    result = verify(store)
    assert result.ok, result.summary()
    assert result.head_seq == records[-1].seq


@pytest.mark.requirement("part11.11.10a")
@SETTINGS
@given(events=st.lists(EVENTS, min_size=2, max_size=5), data=st.data())
def test_any_single_field_edit_is_caught_at_its_event(
    store: IntegrityStore, events: list[AuditEvent], data: st.DataObject
) -> None:
    records = AuditLog(store).append_many(events)
    target = data.draw(st.sampled_from(records), label="event")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    with store.read() as conn:
        original = conn.execute(text(f"SELECT body FROM {EVENT} WHERE seq = :s"), {"s": target.seq}).scalar_one()
    body = json.loads(original)
    replacement = data.draw(
        (JSON if field == "details" else st.one_of(st.integers(), TEXT)).filter(lambda v: v != body[field]),
        label="new value",
    )
    body[field] = replacement if field != "details" or isinstance(replacement, dict) else {"v": replacement}
    edited = canonical_json(body)
    if edited == original:
        return
    with tampering(store) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET body = :b WHERE seq = :s"), {"b": edited, "s": target.seq})
    try:
        result = verify(store)
        assert (result.ok, result.first_bad_seq, result.reason) == (False, target.seq, HASH_MISMATCH)
    finally:
        with tampering(store) as conn:
            conn.execute(text(f"UPDATE {EVENT} SET body = :b WHERE seq = :s"), {"b": original, "s": target.seq})
    assert verify(store).ok


OFFSET = timedelta(hours=23)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.builds(timezone, st.timedeltas(min_value=-OFFSET, max_value=OFFSET)),
    )
)
def test_a_time_formats_canonically_and_reads_back_as_the_same_moment(moment: Any) -> None:
    """Any aware time (any year, offset, microsecond) has a canonical form of 27 characters that reads back as the
    same moment, and that the body's decoder reads as that moment too."""
    import msgspec

    from airflow_integrity.store.audit.event import format_timestamp, parse_timestamp

    text_ = format_timestamp(moment)
    assert len(text_) == 27 and text_.endswith("Z")
    assert parse_timestamp(text_) == moment
    assert msgspec.json.decode(f'"{text_}"'.encode(), type=datetime) == moment
