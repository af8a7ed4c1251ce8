"""consumer_sms against the real broker: ack after the work, `consumido` on `logs`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pika
import pytest

from cartero_common.amqp import declare_shared_queues
from cartero_common.clock import FixedClock
from cartero_common.consumer import ConsumerLoop
from cartero_common.schemas import SmsMessage
from consumer_sms.handler import make_handler
from tests.support import drain, isolated_vhost, queue_depth, wait_until


class RecordingProvider:
    def __init__(self) -> None:
        self.sent: list[SmsMessage] = []

    def send(self, sms: SmsMessage) -> None:
        self.sent.append(sms)


@pytest.fixture
def running() -> Iterator[tuple[str, RecordingProvider]]:
    provider = RecordingProvider()
    clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    with isolated_vhost("cartero-sms") as url:
        loop = ConsumerLoop(
            url=url,
            queue="cola_sms",
            handler=make_handler(provider, clock=clock, timezone="Europe/Madrid"),
            declare=lambda ch: declare_shared_queues(ch, ("cola_sms", "logs")),
            prefetch=5,
        )
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        assert loop.connected.wait(10)
        yield url, provider
        loop.stop()
        thread.join(10)


def test_sms_consumed_and_reported(running: tuple[str, RecordingProvider]) -> None:
    url, provider = running
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    message = {"id": "s1", "mensaje": "hola", "telefono": "600111222", "fecha": "2026-07-01 10:00:00"}
    channel.basic_publish("", "cola_sms", json.dumps(message), pika.BasicProperties(delivery_mode=2, message_id="s1"))
    # A PHP sender's message: no properties at all, not persistent.
    channel.basic_publish("", "cola_sms", json.dumps({"id": "p1", "mensaje": "x", "telefono": "+34600111222"}))
    connection.close()

    wait_until(lambda: len(provider.sent) == 2, timeout=10, what="two sends")
    wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
    assert queue_depth(url, "cola_sms") == 0
    events = [json.loads(body) for _, body in drain(url, "logs")]
    assert [e["id"] for e in events] == ["s1", "p1"]
    assert all(e["evento"] == "consumido" for e in events)
    assert events[0]["fecha_consumo"] == "2026-07-01 10:00:00"
    assert events[0]["cuerpo"] == "Registro consumido por un consumidor"
