"""A message's status from its events, and the bounded read of those events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from consumer_logs.models import Base, Event
from consumer_logs.repository import MAX_EVENTS_OF_ONE, events_of
from consumer_logs.status import message_status, owned_by

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _events(*specs: tuple[str, dict[str, Any]]) -> list[Event]:
    return [
        Event(
            seq=n,
            message_id="m1",
            evento=evento,
            cola="cola_sms",
            stored_at=START + timedelta(seconds=n),
            readable=True,
            payload={"id": "m1", "evento": evento, **extra},
        )
        for n, (evento, extra) in enumerate(specs, start=1)
    ]


SENT = ("enviado", {"owner_ref": "application:1"})
RETRY = ("reintento", {"intento": 1, "motivo": "503", "proximo_intento": "2026-12-01T11:00:05.000+01:00"})
FAILED = ("fallido", {"intentos": 1, "motivo": "400 bad number", "dlq": "cola_sms.dlq"})
DONE = ("consumido", {"proveedor": "http"})


def test_only_the_owner_named_by_enviado_owns_it() -> None:
    events = _events(SENT, DONE)
    assert owned_by(events, "application:1")
    assert not owned_by(events, "application:2") and not owned_by(events, "user:1")
    assert not owned_by(_events(DONE), "application:1")  # no enviado: nobody's


def test_statuses_follow_the_latest_outcome_and_sent_is_final() -> None:
    assert message_status("m1", _events(SENT))["status"] == "queued"
    retrying = message_status("m1", _events(SENT, RETRY))
    assert (retrying["status"], retrying["attempt"], retrying["next_try_at"]) == (
        "retrying",
        1,
        "2026-12-01T11:00:05.000+01:00",
    )
    failed = message_status("m1", _events(SENT, FAILED))
    assert (failed["status"], failed["reason"], failed["dead_lettered"]) == ("failed", "400 bad number", True)
    # Replayed from the DLQ and retried: retrying again. Delivered: sent, whatever follows.
    assert message_status("m1", _events(SENT, FAILED, RETRY))["status"] == "retrying"
    sent = message_status("m1", _events(SENT, RETRY, DONE, RETRY))
    assert (sent["status"], sent["provider"], sent["queue"]) == ("sent", "http", "cola_sms")
    assert [entry["status"] for entry in sent["timeline"]] == ["queued", "retrying", "sent", "retrying"]
    # Consumed before the sender's event was stored: still sent.
    assert message_status("m1", _events(DONE, SENT))["status"] == "sent"


def test_a_message_retried_past_the_bound_shows_its_latest_status_and_stays_its_owners() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    retries = [RETRY] * (MAX_EVENTS_OF_ONE + 50)
    with Session(engine) as session:
        session.add_all(_events(SENT, *retries, DONE))
        session.commit()
        read = events_of(session, "m1")
    assert len(read) == MAX_EVENTS_OF_ONE + 1  # the latest ones and the enviado before them
    assert owned_by(read, "application:1")
    assert message_status("m1", read)["status"] == "sent"
    assert [event.seq for event in read] == sorted(event.seq for event in read)
