"""All queries on the message log."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartero_common.db import insert_ignoring_duplicates
from cartero_common.json_input import NotJson, parse_json
from consumer_logs.models import COLA_LENGTH, EVENTO_LENGTH, ID_LENGTH, Event
from consumer_logs.privacy import masked, masked_text, without_content


@dataclass(frozen=True)
class EventFilter:
    message_id: str | None = None
    evento: str | None = None
    cola: str | None = None
    since: datetime | None = None
    limit: int = 100


def event_row(body: bytes, *, message_id: str | None, now: datetime, store_content: bool) -> dict[str, Any]:
    """The `events` row for whatever came off the queue; never raises on bad input. Without
    `store_content` the message's content is left out (`consumer_logs.privacy`); the digest is
    still of the whole body, so a redelivery is still caught."""
    stored_at = now.astimezone(UTC)
    digest = hashlib.sha256(f"{message_id or ''}\n".encode() + body).hexdigest()
    try:
        payload = parse_json(body)
    except NotJson:
        payload = None
    if not isinstance(payload, dict):
        return {
            "message_id": _column_text(message_id, ID_LENGTH),
            "evento": None,
            "cola": None,
            "stored_at": stored_at,
            "readable": False,
            "payload": None,
            # PostgreSQL text cannot hold NUL; keep everything else of the body readable. Whatever
            # the body is, it may be the message itself: kept only with the content.
            "raw": body.decode("utf-8", errors="replace").replace("\x00", "\ufffd") if store_content else None,
            "digest": digest,
        }
    found_id = payload.get("id")
    return {
        "message_id": _column_text(found_id if found_id is not None else message_id, ID_LENGTH),
        "evento": _column_text(payload.get("evento"), EVENTO_LENGTH),
        "cola": _column_text(payload.get("cola"), COLA_LENGTH),
        "stored_at": stored_at,
        "readable": True,
        "payload": payload if store_content else without_content(payload),
        "raw": None,
        "digest": digest,
    }


def _column_text(value: Any, length: int) -> str | None:
    """`value` as its column can hold it: cut to the column's length, NUL replaced (PostgreSQL
    refuses both, and one refused row would fail the whole batch's transaction)."""
    return str(value)[:length].replace("\x00", "\ufffd") if value is not None else None


def add_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert in order; an event already stored (same digest) is skipped."""
    insert_ignoring_duplicates(session, Event, rows, unique=["digest"])


def find_events(session: Session, where: EventFilter) -> list[Event]:
    query = select(Event).order_by(Event.stored_at, Event.seq).limit(where.limit)
    if where.message_id is not None:
        query = query.where(Event.message_id == where.message_id)
    if where.evento is not None:
        query = query.where(Event.evento == where.evento)
    if where.cola is not None:
        query = query.where(Event.cola == where.cola)
    if where.since is not None:
        query = query.where(Event.stored_at >= where.since.astimezone(UTC))
    return list(session.scalars(query))


MAX_EVENTS_OF_ONE = 200


def events_of(session: Session, message_id: str) -> list[Event]:
    """One message's events, oldest first: one query on `ix_events_message_id`. Bounded: a message
    retried past any sane count still answers in one small read, of its latest events (so its
    current status is in it) and, when that leaves it out, its first `enviado` (which names the
    owner)."""
    of_message = select(Event).where(Event.message_id == message_id)
    latest = list(session.scalars(of_message.order_by(Event.seq.desc()).limit(MAX_EVENTS_OF_ONE)))
    latest.reverse()
    if len(latest) < MAX_EVENTS_OF_ONE or any(event.evento == "enviado" for event in latest):
        return latest
    first_sent = session.scalars(of_message.where(Event.evento == "enviado").order_by(Event.seq).limit(1)).first()
    return [first_sent, *latest] if first_sent is not None else latest


def public_event(event: Event, *, mask_addresses: bool) -> dict[str, Any]:
    """The event as served: its own fields, plus where and when it was stored; with
    `mask_addresses` (a list, not a lookup by id) its phone numbers and addresses masked."""
    stored_at = event.stored_at if event.stored_at.tzinfo else event.stored_at.replace(tzinfo=UTC)
    meta = {"seq": event.seq, "stored_at": stored_at.isoformat(), "readable": event.readable}
    if event.readable and event.payload is not None:
        payload = masked(event.payload) if mask_addresses else event.payload
        return {"id": event.message_id, "evento": None, **payload, **meta}
    # An unreadable body names no field to mask: a list masks whatever in it looks like an
    # address; a lookup by id shows it as stored (when content is stored at all).
    raw = masked_text(event.raw) if mask_addresses and event.raw is not None else event.raw
    return {"id": event.message_id, "evento": None, "raw": raw, **meta}
