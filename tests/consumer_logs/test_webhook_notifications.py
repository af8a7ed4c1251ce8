"""consumer_logs hands each consumer event to `webhooks` for the message's owner, on the real
broker and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pika
import pytest
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.db import make_engine, make_sessionmaker, migrate
from consumer_logs.__main__ import ALEMBIC
from consumer_logs.handler import make_handler
from consumer_logs.models import Event
from tests.consumers import running
from tests.support import drain, isolated_vhost, queue_depth, wait_until

OWNER = "application:7"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Any]]:
    migrate(script_location=ALEMBIC, url=database_url, version_table="alembic_version_consumer_logs")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(delete(Event))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def broker(sessions: sessionmaker[Any]) -> Iterator[str]:
    clock = FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    with isolated_vhost("cartero-logs-hooks") as url:
        handler = make_handler(sessions, clock, store_content=False, notify=True)
        loop = ConsumerLoop(
            url=url, queue="logs", handler=handler, report_to=None, declares=("webhooks",), prefetch=50, batch_size=20
        )
        with running(loop):
            yield url


def _publish(url: str, *events: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for event in events:
            props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event["id"])
            channel.basic_publish("", "logs", json.dumps(event).encode(), props)
    finally:
        connection.close()


def _enviado(message_id: str, owner: str | None = OWNER) -> dict[str, Any]:
    event = {"id": message_id, "evento": "enviado", "cola": "cola_sms", "telefono": "+34600111222", "mensaje": "x"}
    if owner is not None:
        event["owner_ref"] = owner
    return event


def _consumer(message_id: str, evento: str, **extra: Any) -> dict[str, Any]:
    return {"id": message_id, "evento": evento, "cola": "cola_sms", "fecha_consumo": "2026-03-01 11:00:00", **extra}


def _notifications(url: str, expected: int) -> list[dict[str, Any]]:
    wait_until(lambda: queue_depth(url, "webhooks") >= expected, timeout=15, what=f"{expected} notifications")
    return [json.loads(body) for _, body in drain(url, "webhooks")]


def test_each_consumer_event_becomes_its_owners_notification(broker: str) -> None:
    _publish(broker, _enviado("m1"))
    _publish(
        broker,
        _consumer("m1", "reintento", intento=1, motivo="gateway 503", espera_s=5.0),
        _consumer("m1", "fallido", intentos=5, motivo="gateway 503 (gave up)"),
        _consumer("m1", "consumido", proveedor="log"),
        _consumer("m1", "rechazado", motivo="bad json"),
    )
    found = _notifications(broker, 4)
    assert [(n["owner_ref"], n["type"], n["message_id"]) for n in found] == [
        (OWNER, "message.retrying", "m1"),
        (OWNER, "message.failed", "m1"),
        (OWNER, "message.sent", "m1"),
        (OWNER, "message.failed", "m1"),
    ]
    assert found[0]["data"]["attempt"] == 1 and found[0]["data"]["retry_in_s"] == 5.0
    assert found[1]["data"]["attempts"] == 5 and found[1]["data"]["rejected"] is False
    assert found[2]["data"]["provider"] == "log"
    assert found[3]["data"]["rejected"] is True
    assert len({n["event_id"] for n in found}) == 4
    assert all(n["event_id"].startswith("evt_") and n["timestamp"] for n in found)
    # No content and no address of the message in a notification.
    assert "+34600111222" not in json.dumps(found) and '"mensaje"' not in json.dumps(found)


def test_an_enviado_stored_after_its_consumer_event_publishes_the_notification(broker: str) -> None:
    _publish(broker, _consumer("late", "consumido"))
    wait_until(lambda: queue_depth(broker, "logs") == 0, timeout=10, what="logs drained")
    assert queue_depth(broker, "webhooks") == 0, "no owner known yet: nothing to notify"
    _publish(broker, _enviado("late"))
    [found] = _notifications(broker, 1)
    assert (found["type"], found["message_id"], found["owner_ref"]) == ("message.sent", "late", OWNER)


def test_a_redelivered_event_publishes_the_same_notification_again(broker: str) -> None:
    _publish(broker, _enviado("again"))
    event = _consumer("again", "consumido")
    _publish(broker, event)
    [first] = _notifications(broker, 1)
    _publish(broker, event)  # the same body and id: the same digest, stored once
    [second] = _notifications(broker, 1)
    assert second == first


def test_no_owner_no_notification_and_the_enviado_itself_is_not_one(broker: str) -> None:
    _publish(broker, _enviado("orphan", owner=None), _consumer("orphan", "consumido"))
    _publish(broker, _enviado("marker"), _consumer("marker", "consumido"))
    found = _notifications(broker, 1)
    assert [n["message_id"] for n in found] == ["marker"]
