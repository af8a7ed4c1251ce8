"""consumer_logs on real databases (SQLite and PostgreSQL) and the real broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.db import make_engine, make_sessionmaker, migrate
from consumer_logs.__main__ import ALEMBIC
from consumer_logs.api import create_app
from consumer_logs.handler import make_handler
from consumer_logs.models import Event
from tests.consumer_logs.support import READ_AUTH, READ_KEY
from tests.consumers import odd_json
from tests.support import isolated_vhost, wait_until


def _api(sessions: sessionmaker[Any]) -> TestClient:
    return TestClient(create_app(sessions, read_key=READ_KEY), headers=READ_AUTH)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Any]]:
    migrate(script_location=ALEMBIC, url=database_url, version_table="alembic_version_consumer_logs")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(delete(Event))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def consuming(sessions: sessionmaker[Any]) -> Iterator[tuple[str, FixedClock]]:
    clock = FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    with isolated_vhost("cartero-logs") as url:
        # These tests are about storing itself, so the content is kept and every field can be
        # checked; what is kept without it is in test_access.py.
        handler = make_handler(sessions, clock, store_content=True)
        loop = ConsumerLoop(url=url, queue="logs", handler=handler, report_to=None, prefetch=50, batch_size=20)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        assert loop.connected.wait(10)
        yield url, clock
        loop.stop()
        thread.join(10)
        assert not thread.is_alive()


def _publish(
    url: str, body: bytes, *, persistent: bool = True, properties: bool = True, message_id: str | None = None
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        props = (
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2 if persistent else 1, message_id=message_id
            )
            if properties
            else None
        )
        connection.channel().basic_publish("", "logs", body, props)
    finally:
        connection.close()


def test_events_stored_and_filtered(consuming: tuple[str, FixedClock], sessions: sessionmaker[Any]) -> None:
    url, clock = consuming
    api = _api(sessions)
    _publish(url, json.dumps({"id": "m1", "evento": "enviado", "cola": "cola_sms", "fecha": "f"}).encode())
    wait_until(lambda: len(api.get("/v1/events", params={"id": "m1"}).json()) == 1, timeout=10, what="m1 stored")
    clock.set(clock.now + timedelta(hours=1))
    _publish(url, json.dumps({"id": "m1", "evento": "consumido", "cola": "cola_sms"}).encode())
    _publish(url, json.dumps({"id": "m2", "evento": "enviado", "cola": "correos"}).encode())
    wait_until(lambda: len(api.get("/v1/events").json()) == 3, timeout=10, what="3 events")

    timeline = api.get("/v1/events", params={"id": "m1"}).json()
    assert [e["evento"] for e in timeline] == ["enviado", "consumido"]
    assert timeline[0]["fecha"] == "f" and timeline[0]["readable"] is True
    assert [e["id"] for e in api.get("/v1/events", params={"cola": "correos"}).json()] == ["m2"]
    assert len(api.get("/v1/events", params={"evento": "enviado"}).json()) == 2
    later = api.get("/v1/events", params={"since": "2026-03-01T10:30:00"}).json()
    assert [e["evento"] for e in later] == ["consumido", "enviado"]
    madrid = api.get("/v1/events", params={"since": "2026-03-01T10:59:00+01:00"}).json()
    assert len(madrid) == 3
    assert len(api.get("/v1/events", params={"limit": 1}).json()) == 1


def test_php_events_and_garbage_are_stored_without_crashing(
    consuming: tuple[str, FixedClock], sessions: sessionmaker[Any]
) -> None:
    url, _ = consuming
    api = _api(sessions)
    # What the team's PHP sender writes: no `evento`, not persistent, no properties.
    _publish(url, json.dumps({"id": "php1", "mensaje": "hola", "telefono": "600111222"}).encode(), properties=False)
    _publish(url, b"this is not json {", persistent=False)
    _publish(url, b"\xff\xfe\x00garbage")
    _publish(url, json.dumps(["a", "list"]).encode())
    _publish(url, json.dumps({"id": "after", "evento": "enviado"}).encode())
    events = wait_until(lambda: (e := api.get("/v1/events").json()) and len(e) == 5 and e, timeout=10, what="5 events")
    assert events[0]["id"] == "php1" and events[0]["evento"] is None and events[0]["mensaje"] == "hola"
    assert [e["readable"] for e in events] == [True, False, False, False, True]
    assert events[1]["raw"] == "this is not json {"
    assert events[4]["id"] == "after"


def test_bad_queries_are_problems(sessions: sessionmaker[Any]) -> None:
    api = _api(sessions)
    for params in ({"since": "yesterday"}, {"limit": 0}, {"limit": 100000}):
        response = api.get("/v1/events", params=params)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/events", params={"id": "nope"}).json() == []


def test_a_redelivered_event_is_stored_once(consuming: tuple[str, FixedClock], sessions: sessionmaker[Any]) -> None:
    url, _ = consuming
    api = _api(sessions)
    event = json.dumps({"id": "r1", "evento": "consumido", "cola": "cola_sms", "fecha_consumo": "f"}).encode()
    _publish(url, event, message_id="r1")
    _publish(url, event, message_id="r1")  # what the broker hands out again after a crash before the ack
    retry = json.dumps({"id": "r1", "evento": "reintento", "intento": 1}).encode()
    _publish(url, retry, message_id="r1")
    _publish(url, json.dumps({"id": "r1", "evento": "reintento", "intento": 2}).encode(), message_id="r1")
    _publish(url, json.dumps({"id": "end", "evento": "enviado"}).encode(), message_id="end")
    wait_until(lambda: api.get("/v1/events", params={"id": "end"}).json(), timeout=10, what="the last event")
    timeline = api.get("/v1/events", params={"id": "r1"}).json()
    assert [(e["evento"], e.get("intento")) for e in timeline] == [
        ("consumido", None),
        ("reintento", 1),
        ("reintento", 2),
    ]


def test_json_past_the_parsers_limits_is_stored_unreadable_with_its_batch(
    consuming: tuple[str, FixedClock], sessions: sessionmaker[Any]
) -> None:
    url, _ = consuming
    api = _api(sessions)
    odd = odd_json({"id": "odd", "evento": "enviado", "cola": "cola_sms"})
    _publish(url, json.dumps({"id": "before", "evento": "enviado"}).encode())
    for body in odd:
        _publish(url, body)
    _publish(url, json.dumps({"id": "after", "evento": "enviado"}).encode())
    total = len(odd) + 2
    found = wait_until(
        lambda: (e := api.get("/v1/events").json()) and len(e) == total and e, timeout=10, what="every event"
    )
    assert [e["readable"] for e in found] == [True] + [False] * len(odd) + [True]
    assert [found[0]["id"], found[-1]["id"]] == ["before", "after"]
    assert [e["raw"].encode() for e in found[1:-1]] == odd


def test_text_a_column_cannot_hold_is_cut_to_fit_with_its_batch(
    consuming: tuple[str, FixedClock], sessions: sessionmaker[Any]
) -> None:
    """PostgreSQL refuses NUL in text and a value over a column's length; SQLite takes both."""
    url, _ = consuming
    api = _api(sessions)
    _publish(url, json.dumps({"id": "before", "evento": "enviado"}).encode())
    _publish(
        url, json.dumps({"id": "nul\u0000id", "evento": "enviado\u0000", "cola": "c\u0000", "nota": "a\u0000"}).encode()
    )
    _publish(url, json.dumps({"id": "i" * 300, "evento": "e" * 100, "cola": "c" * 300}).encode())
    _publish(url, b"not json", message_id="m" * 250)
    _publish(url, b"not json either", message_id="nul\x00m")
    _publish(url, json.dumps({"id": "after", "evento": "enviado"}).encode())
    wait_until(lambda: len(api.get("/v1/events").json()) == 6, timeout=10, what="6 events")
    with sessions() as session:
        rows = session.execute(select(Event.message_id, Event.evento, Event.cola).order_by(Event.seq)).all()
    assert [tuple(row) for row in rows] == [
        ("before", "enviado", None),
        ("nul\ufffdid", "enviado\ufffd", "c\ufffd"),
        ("i" * 200, "e" * 40, "c" * 200),
        ("m" * 200, None, None),
        ("nul\ufffdm", None, None),
        ("after", "enviado", None),
    ]
    assert api.get("/v1/events", params={"id": "nul\ufffdid"}).json()[0]["nota"] == "a\u0000"
