"""The webhook notifications the message log hands on (docs/webhooks.md, "Deliveries").

A consumer event (`consumido`, `reintento`, `fallido`, `rechazado`) becomes a notification for
the owner named by the message's `enviado` event. Either may be stored first: a consumer event
whose `enviado` is not there yet is notified when the `enviado` comes. Everything is read back
from the stored rows, so a redelivered event (same digest) gives the very same notification
again: at least once, with one `event_id`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartero_common.webhook_wire import MESSAGE_FAILED, MESSAGE_RETRYING, MESSAGE_SENT, TYPE_OF_EVENTO, Notification
from cartero_common.wire import Evento
from consumer_logs.models import Event

NOTIFIED_EVENTOS = tuple(TYPE_OF_EVENTO)


def event_id(digest: str) -> str:
    """Stable per stored event: its digest (sha256 of the AMQP id and the body), shortened."""
    return f"evt_{digest[:32]}"


def notifications_for(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, Notification]]:
    """(digest of the delivery that brought it, notification) for each of the batch's `rows`
    (as `repository.event_row` made them, now stored) that is due one: a consumer event whose
    `enviado` is known, and, for an `enviado`, every consumer event of its message stored before
    it. In the order the events were stored. One query: the batch's messages' events."""
    kinds = (Evento.SENT.value, *NOTIFIED_EVENTOS)
    mine = [r for r in rows if r["message_id"] is not None and r["evento"] in kinds]
    if not mine:
        return []
    related = list(
        session.scalars(
            select(Event)
            .where(Event.message_id.in_({r["message_id"] for r in mine}), Event.evento.in_(kinds))
            .order_by(Event.seq)
        )
    )
    owners: dict[str, str] = {}
    for event in related:
        owner = (event.payload or {}).get("owner_ref") if event.evento == Evento.SENT else None
        if isinstance(owner, str) and owner and event.message_id is not None:
            owners.setdefault(event.message_id, owner)
    if not owners:
        return []
    sent_in_batch = {r["message_id"]: r["digest"] for r in mine if r["evento"] == Evento.SENT}
    wanted = {r["digest"] for r in mine}
    found: list[tuple[str, Notification]] = []
    for event in related:
        if event.evento not in TYPE_OF_EVENTO or event.digest is None or event.message_id not in owners:
            continue
        if event.digest in wanted:
            cause = event.digest
        elif (enviado := sent_in_batch.get(event.message_id)) is not None:
            cause = enviado
        else:
            continue
        found.append((cause, notification(event, owners[event.message_id])))
    return found


def notification(event: Event, owner_ref: str) -> Notification:
    payload: dict[str, Any] = event.payload or {}
    kind = TYPE_OF_EVENTO[str(event.evento)]
    stored_at = event.stored_at if event.stored_at.tzinfo else event.stored_at.replace(tzinfo=UTC)
    data: dict[str, Any] = {"message_id": event.message_id, "queue": event.cola, "at": payload.get("fecha_consumo")}
    if kind == MESSAGE_SENT:
        data["provider"] = payload.get("proveedor")
    elif kind == MESSAGE_RETRYING:
        data.update(attempt=payload.get("intento"), reason=payload.get("motivo"), retry_in_s=payload.get("espera_s"))
    elif kind == MESSAGE_FAILED:
        data.update(
            attempts=payload.get("intentos"),
            reason=payload.get("motivo"),
            rejected=event.evento == Evento.REJECTED,
        )
    assert event.digest is not None and event.message_id is not None
    return Notification(
        owner_ref=owner_ref,
        type=kind,
        message_id=event.message_id,
        event_id=event_id(event.digest),
        timestamp=stored_at.astimezone(UTC).isoformat(),
        data=data,
    )
