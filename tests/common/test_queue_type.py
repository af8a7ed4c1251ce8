"""CARTERO_QUEUE_TYPE on the real broker: classic declares stay as they were (argument-free),
quorum makes every queue of ours a quorum queue, and the consume loop works on them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from cartero_common.amqp import RetryPolicy, declare_topology, parse_delays
from cartero_common.amqp.publisher import AsyncPublisher
from cartero_common.consume import ConsumerLoop
from cartero_common.consume.dlq import replay_dead_letters
from cartero_common.settings import ServiceSettings
from cartero_common.wire import SHARED_QUEUES
from tests.consumers import FAST_DELAYS, FailsOnce, running, sms, vhost_of
from tests.support import isolated_vhost, rabbit_api, wait_until

POLICY = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-qtype") as found:
        yield found


def queues_of(url: str) -> dict[str, dict[str, object]]:
    vhost = quote(vhost_of(url), safe="")
    return {q["name"]: q for q in rabbit_api("GET", f"/queues/{vhost}").json()}


def declare_everything(url: str, queue_type: str) -> None:
    """What each kind of client declares: a consumer's topology, the sender's queues (asyncio),
    `replay-dlq`'s."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        declare_topology(connection.channel(), "cola_sms", POLICY, also=("logs",), queue_type=queue_type)  # type: ignore[arg-type]
    finally:
        connection.close()

    async def sender() -> None:
        publisher = AsyncPublisher(url, timeout=5.0, queue_type=queue_type)  # type: ignore[arg-type]
        try:
            assert await publisher.ping()
        finally:
            await publisher.close()

    asyncio.run(sender())
    assert replay_dead_letters(url, "correos", progress=False, queue_type=queue_type) == 0  # type: ignore[arg-type]


def test_the_setting_defaults_to_classic_and_takes_quorum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTERO_QUEUE_TYPE", raising=False)
    assert ServiceSettings().cartero_queue_type == "classic"
    monkeypatch.setenv("CARTERO_QUEUE_TYPE", "quorum")
    assert ServiceSettings().cartero_queue_type == "quorum"
    monkeypatch.setenv("CARTERO_QUEUE_TYPE", "stream")
    with pytest.raises(ValueError, match="classic"):
        ServiceSettings()


def test_classic_declares_are_argument_free_as_before(url: str) -> None:
    declare_everything(url, "classic")
    queues = queues_of(url)
    assert set(queues) >= {*SHARED_QUEUES, "cola_sms.dlq", "correos.dlq", "cola_sms.retry.200ms"}
    for name, info in queues.items():
        assert info["type"] == "classic", name
        if ".retry." not in name:
            assert info["arguments"] == {}, name
    assert queues["cola_sms.retry.200ms"]["arguments"] == {
        "x-message-ttl": 200,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "cola_sms",
    }


def test_quorum_makes_every_queue_of_ours_a_quorum_queue(url: str) -> None:
    declare_everything(url, "quorum")
    queues = queues_of(url)
    assert set(queues) == {
        *SHARED_QUEUES,
        "cola_sms.dlq",
        "correos.dlq",
        "cola_sms.retry.200ms",
        "cola_sms.retry.400ms",
    }
    for name, info in queues.items():
        assert info["type"] == "quorum", name
        assert dict(info["arguments"]).get("x-queue-type") == "quorum", name  # type: ignore[call-overload]
    assert queues["cola_sms.retry.400ms"]["arguments"] == {
        "x-queue-type": "quorum",
        "x-message-ttl": 400,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "cola_sms",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    # Declaring again, as every client does at each start, matches.
    declare_everything(url, "quorum")


def test_a_client_of_the_other_type_is_refused_with_406(url: str) -> None:
    """Why setup refuses a type switch and why every client must be told the same type."""
    declare_everything(url, "quorum")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().queue_declare("cola_sms.dlq", durable=True)
        assert refused.value.reply_code == 406
    finally:
        if connection.is_open:
            connection.close()


def test_a_retry_goes_through_quorum_queues_and_back(url: str) -> None:
    """A consumer on quorum queues (per-consumer prefetch: quorum queues refuse a global one): the
    first attempt fails, the copy waits in the quorum retry queue, expires back to `cola_sms`
    (dead-lettered at least once) and is consumed."""
    handler = FailsOnce()
    name = f"test-qtype-{uuid.uuid4().hex[:8]}"
    loop = ConsumerLoop(url=url, queue="cola_sms", handler=handler, policy=POLICY, name=name, queue_type="quorum")
    with running(loop):
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            body = json.dumps(sms("q-1")).encode()
            properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id="q-1")
            channel.basic_publish("", "cola_sms", body, properties, mandatory=True)
        finally:
            connection.close()
        assert handler.done.wait(15), handler.attempts
    assert handler.attempts == [("q-1", 1), ("q-1", 2)]
    queues = queues_of(url)
    assert queues["cola_sms"]["type"] == queues["cola_sms.retry.200ms"]["type"] == "quorum"
    assert wait_until(lambda: queues_of(url)["cola_sms"]["messages"] == 0, timeout=15, what="cola_sms emptied")


def test_a_global_prefetch_is_refused_on_a_quorum_queue(url: str) -> None:
    """What the loop's `global_qos=False` avoids: the broker will not consume a quorum queue
    under a channel-wide prefetch."""
    declare_everything(url, "quorum")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=10, global_qos=True)
        with pytest.raises(pika.exceptions.AMQPError, match="global qos") as refused:
            channel.basic_consume("cola_sms", lambda *_: None)
            connection.process_data_events(time_limit=1)
        assert refused.value.args[0] == 540  # NOT_IMPLEMENTED
    finally:
        if connection.is_open:
            connection.close()


def test_the_asyncio_publisher_publishes_to_a_quorum_queue(url: str) -> None:
    async def send() -> None:
        publisher = AsyncPublisher(url, timeout=5.0, queue_type="quorum")
        try:
            await publisher.publish("cola_sms", b'{"id": "a"}', message_id="a", now=datetime.now(UTC))
        finally:
            await publisher.close()

    asyncio.run(send())
    assert wait_until(lambda: queues_of(url)["cola_sms"]["messages"] == 1, timeout=15, what="the message listed")
    assert queues_of(url)["cola_sms"]["type"] == "quorum"
