"""The trail: events (filters, seq cursor), one event with its hashes, and a business key's story and export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response, StreamingResponse

from airflow_integrity.plugin.api.access import Access, AccessDep
from airflow_integrity.plugin.api.models import Event, EventDetail, EventPage
from airflow_integrity.plugin.api.params import NO_NUL, Cursor, Limit, Text
from airflow_integrity.plugin.api.store import bad_cursor, open_store

router = APIRouter(tags=["Trail"])
Moment = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=NO_NUL,
        description="ISO-8601; since is inclusive, until exclusive (UTC if no zone).",
    ),
]


def event_json(row: Any) -> dict[str, Any]:
    """The API form of a :class:`~airflow_integrity.store.audit.query.EventRow`."""
    if row.content is None:
        empty = dict.fromkeys(Event.model_fields, None)
        return {
            **empty,
            "seq": row.seq,
            "details": {"unreadable_body": row.raw},
            "readable": False,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
        }
    from airflow_integrity.store.audit.event import format_timestamp

    fields = msgspec.structs.asdict(row.content)
    fields["recorded_at"] = format_timestamp(row.content.recorded_at)
    return {**fields, "seq": row.seq, "prev_hash": row.prev_hash, "hash": row.hash, "readable": True}


def _page(rows: list[Any], next_cursor: str | None, head: int) -> Response:
    """An :class:`EventPage`, encoded by msgspec: each body is decoded once, here, and written straight to JSON
    (the fields are those :func:`event_json` gives, which the model documents)."""
    page = {"events": [event_json(r) for r in rows], "next_cursor": next_cursor, "head_seq": head}
    return Response(msgspec.json.encode(page), media_type="application/json")


def _seq(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        value = int(cursor)
    except ValueError:
        raise bad_cursor(cursor) from None
    if not 0 <= value < 2**63:
        raise bad_cursor(cursor)
    return value


def _filter(access: Access, **fields: Any) -> Any:
    from airflow_integrity.store.audit.query import EventFilter

    dag_id = fields.get("dag_id")
    if dag_id is not None:
        access.require_read(dag_id)
    return EventFilter(**fields, readable_dags=access.readable_dags(), without_dag=access.store_wide_read)


@router.get("/events", response_model=EventPage, summary="Events, newest first")
def list_events(
    access: AccessDep,
    dag_id: Text = None,
    run_id: Text = None,
    task_id: Text = None,
    map_index: Annotated[int | None, Query(ge=-1, le=2**31 - 1, description="With task_id.")] = None,
    business_key: Text = None,
    event_type: Text = None,
    actor: Text = None,
    since: Annotated[
        str | None, Query(max_length=40, pattern=NO_NUL, description="ISO-8601, inclusive (UTC if no zone).")
    ] = None,
    until: Annotated[str | None, Query(max_length=40, pattern=NO_NUL, description="ISO-8601, exclusive.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """Chained events the user may read, newest first. Filters combine; each is served by an index. Pages
    are cut by sequence number, so events recorded while one pages through never shift a page."""
    from airflow_integrity.store.audit import query

    where = _filter(
        access,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        business_key=business_key,
        event_type=event_type,
        actor=actor,
        since=since,
        until=until,
    )
    with open_store() as store:
        head = query.head(store)
        rows = query.page(store, where, before=_seq(cursor), limit=limit)
    more = len(rows) == limit and rows[-1].seq > 1
    return _page(rows, str(rows[-1].seq) if more else None, head)


@router.get("/events/{seq}", response_model=EventDetail, summary="One event and its hashes")
def get_event(access: AccessDep, seq: int) -> dict[str, Any]:
    """The event ``seq`` with its canonical body, its hash re-computed and its link to the event before."""
    from airflow_integrity.store.audit import query
    from airflow_integrity.store.audit.event import GENESIS_HASH, chain_hash
    from airflow_integrity.store.audit.signing import newest_checkpoint

    with open_store() as store:
        row = query.get(store, seq) if 0 < seq < 2**63 else None
        dag_id = row.record.dag_id if row is not None and row.record is not None else None
        if row is None or not access.may_read(dag_id):
            # The same answer whether the event does not exist or may not be seen: its existence is not told.
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No event {seq} that you may read.")
        previous = query.get(store, seq - 1) if seq > 1 else None
        with store.read() as conn:
            newest = newest_checkpoint(conn)
    # As stored: what the hash covers, however its fields read.
    body = row.shown_body
    return {
        **event_json(row),
        "body": body,
        "chained": True,
        "hash_matches": chain_hash(row.prev_hash or "", seq, row.stored_body) == row.hash,
        "links_to_previous": (
            row.prev_hash == GENESIS_HASH if seq == 1 else previous is not None and previous.hash == row.prev_hash
        ),
        "covered_by_checkpoint": newest is not None and newest.seq >= seq,
    }


@router.get("/stories/{business_key:path}/export", summary="Download a business key's story")
def export_story(
    access: AccessDep,
    business_key: str,
    format: Annotated[Literal["jsonl", "csv"], Query(description="jsonl or csv")] = "jsonl",
) -> StreamingResponse:
    """The story as ``airflow integrity audit export --business-key KEY`` writes it (same format, verification
    first), limited to the DAGs the user may read; streamed at constant memory."""
    from airflow_integrity.store.audit.export import export_lines

    _check_key(business_key)
    where = _filter(access, business_key=business_key, story=True)
    store_context = open_store()
    store = store_context.__enter__()
    try:
        lines = export_lines(store, format, where=where)
    except BaseException:
        store_context.__exit__(None, None, None)
        raise

    def body() -> Iterator[bytes]:
        try:
            for line in lines:
                yield line.encode("utf-8")
        finally:
            store_context.__exit__(None, None, None)

    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in business_key)[:80] or "story"
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return StreamingResponse(
        body(),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="story-{name}.{format}"'},
    )


@router.get("/stories/{business_key:path}", response_model=EventPage, summary="A business key's story")
def story(access: AccessDep, business_key: str, cursor: Cursor = None, limit: Limit = 200) -> Response:
    """Everything that happened to a business key, oldest first, across DAGs and runs: the events recorded with
    the key and the events without a key of the runs that recorded it (task states, approvals, run outcomes)."""
    from airflow_integrity.store.audit import query

    _check_key(business_key)
    where = _filter(access, business_key=business_key, story=True)
    with open_store() as store:
        head = query.head(store)
        rows = query.page(store, where, after=_seq(cursor) or 0, limit=limit)
    return _page(rows, str(rows[-1].seq) if len(rows) == limit else None, head)


def _check_key(business_key: str) -> None:
    if not business_key or len(business_key) > 512 or "\x00" in business_key:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "business_key must be 1 to 512 characters without NUL.",
        )
