"""Each RabbitMQ role of rabbitmq/definitions.json, created by the real `rabbitmq-setup` on a vhost
of its own (users named for this run, deleted afterwards): the code that holds the role does its
work with it, and the broker answers 403 ACCESS_REFUSED to everything outside the role.

A publish is authorised by exchange, not by queue. The sender and the monitor publish only through
the route exchanges (`cartero.<queue>`, each bound to its one queue), so they reach only their
queues; the consumers and the php role need the default exchange (retry queues, the PHP wire
format), and with it may address any queue of the vhost by name. rabbitmq/README.md ("Roles") says
what that leaves open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from cartero_common.amqp import RetryPolicy, connect, parse_delays
from cartero_common.amqp.publisher import AsyncPublisher
from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.consume.dlq import replay_dead_letters
from cartero_common.consume.outcomes import Delivery, Done, Outcome, PermanentFailure, Publish, TransientFailure
from cartero_common.wire import route_exchange
from dead_letters.broker import DeadLetterQueues
from monitor.events import EventPublisher
from monitor.sources import AmqpDepth
from tests.consumers import events, running, sms
from tests.support import (
    RABBIT_API,
    amqp_url_for,
    create_vhost,
    delete_vhost,
    drain,
    queue_depth,
    rabbitmq_roles,
    wait_until,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
SHARED = ("cola_sms", "correos", "logs")


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    found = create_vhost("cartero-roles")
    try:
        yield found
    finally:
        delete_vhost(found)


@pytest.fixture(scope="module")
def roles(vhost: str) -> Iterator[dict[str, str]]:
    with rabbitmq_roles(vhost) as urls:
        yield urls


@pytest.fixture
def guest(vhost: str) -> Iterator[str]:
    """The vhost as the test's administrator sees it; every shared queue emptied afterwards."""
    url = amqp_url_for(vhost)
    yield url
    for queue in (*SHARED, "cola_sms.dlq", "correos.dlq", "logs.dlq"):
        drain(url, queue)


def refused(url: str, action: Callable[[BlockingChannel], object]) -> str:
    """The broker's answer to `action` on a fresh channel: must be 403 ACCESS_REFUSED."""
    connection = connect(url)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            action(connection.channel())
        assert caught.value.reply_code == 403, caught.value
        assert "ACCESS_REFUSED" in caught.value.reply_text
        return str(caught.value.reply_text)
    finally:
        if connection.is_open:
            connection.close()


def allowed(url: str, action: Callable[[BlockingChannel], Any]) -> Any:
    connection = connect(url)
    try:
        return action(connection.channel())
    finally:
        connection.close()


def confirmed_publish(
    queue: str, body: bytes = b'{"id": "x"}', *, exchange: str = ""
) -> Callable[[BlockingChannel], None]:
    def publish(channel: BlockingChannel) -> None:
        channel.confirm_delivery()
        channel.basic_publish(exchange, queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)

    return publish


def consume(queue: str) -> Callable[[BlockingChannel], object]:
    return lambda channel: channel.basic_consume(queue, lambda *_: None)


def get(queue: str) -> Callable[[BlockingChannel], object]:
    return lambda channel: channel.basic_get(queue)


def purge(queue: str) -> Callable[[BlockingChannel], object]:
    return lambda channel: channel.queue_purge(queue)


def declare(queue: str, **arguments: Any) -> Callable[[BlockingChannel], object]:
    return lambda channel: channel.queue_declare(queue, durable=True, arguments=arguments or None)


def delete(queue: str) -> Callable[[BlockingChannel], object]:
    return lambda channel: channel.queue_delete(queue)


def passive(queue: str) -> Callable[[BlockingChannel], int]:
    return lambda channel: int(channel.queue_declare(queue, passive=True).method.message_count)


def test_every_role_exists_with_no_management_access(roles: dict[str, str]) -> None:
    assert set(roles) == {
        "sender",
        "consumer_sms",
        "consumer_email",
        "consumer_logs",
        "consumer_webhooks",
        "dead_letters",
        "monitor",
        "php",
    }
    for role, url in roles.items():
        parsed = pika.URLParameters(url)
        credentials = parsed.credentials
        answer = httpx.get(f"{RABBIT_API}/overview", auth=(credentials.username, credentials.password), timeout=10)
        assert answer.status_code == 401, f"{role} reached the management API"


def test_the_sender_publishes_to_the_three_queues_through_its_own_publisher(roles: dict[str, str], guest: str) -> None:
    async def publish_all() -> None:
        publisher = AsyncPublisher(roles["sender"], timeout=5.0)
        try:
            for queue in SHARED:
                await publisher.publish(queue, json.dumps({"id": queue}).encode(), message_id=queue, now=NOW)
        finally:
            await publisher.close()

    asyncio.run(publish_all())
    assert [queue_depth(guest, q) for q in SHARED] == [1, 1, 1]


def test_the_sender_cannot_consume_purge_declare_or_delete(roles: dict[str, str], guest: str) -> None:
    sender = roles["sender"]
    allowed(guest, confirmed_publish("cola_sms"))
    for queue in SHARED:
        refused(sender, consume(queue))
        refused(sender, get(queue))
        refused(sender, purge(queue))
        refused(sender, delete(queue))
        refused(sender, declare(queue))  # a declare that is not passive needs configure
    refused(sender, declare("sender-own-queue"))
    refused(sender, lambda channel: channel.exchange_declare("sender-exchange", "fanout"))
    refused(sender, _publish_to_exchange("amq.direct"))
    # Not the default exchange either, which reaches every queue by name: a DLQ, a retry queue,
    # or a shared queue addressed directly.
    for queue in ("cola_sms.dlq", "cola_sms.retry.1s", "cola_sms", "logs"):
        refused(sender, confirmed_publish(queue))
    # Its own exchanges reach their one queue: any other routing key goes nowhere.
    with pytest.raises(pika.exceptions.UnroutableError):
        allowed(sender, _publish_to_exchange("cartero.logs", routing_key="cola_sms.dlq"))
    assert queue_depth(guest, "cola_sms") == 1, "the message the sender could not touch is still there"
    assert queue_depth(guest, "cola_sms.dlq") == 0 and queue_depth(guest, "logs") == 0


def _publish_to_exchange(exchange: str, routing_key: str = "cola_sms") -> Callable[[BlockingChannel], None]:
    def publish(channel: BlockingChannel) -> None:
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, b"{}", mandatory=True)

    return publish


class Scripted:
    """A consumer handler: the message's `mensaje` says what becomes of it."""

    def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for delivery in batch:
            message = json.loads(delivery.body)
            if message["mensaje"] == "retry":
                outcomes.append(TransientFailure("gateway timeout", message=message))
            elif message["mensaje"] == "dead":
                outcomes.append(PermanentFailure("invalid number", message=message))
            else:
                outcomes.append(Done(message=message, consumed_at=NOW))
        return outcomes


def test_a_consumer_does_all_its_work_with_its_own_role(roles: dict[str, str], guest: str) -> None:
    """consumer_sms's loop: declares its retry queues and DLQ, consumes, retries, dead-letters,
    reports on logs; then replay-dlq as the same role puts the dead letters back."""
    loop = ConsumerLoop(
        url=roles["consumer_sms"],
        queue="cola_sms",
        handler=Scripted(),
        policy=RetryPolicy(max_attempts=2, delays=parse_delays("200ms")),
        prefetch=10,
        clock=FixedClock(NOW),
        name="roles-test consumer_sms",
    )
    with running(loop):
        for message_id, what in (("ok-1", "hola"), ("retry-1", "retry"), ("dead-1", "dead")):
            body = json.dumps(sms(message_id, mensaje=what)).encode()
            allowed(roles["sender"], confirmed_publish("cola_sms", body, exchange=route_exchange("cola_sms")))
        wait_until(lambda: queue_depth(guest, "cola_sms.dlq") == 2, timeout=15, what="two dead letters")
        wait_until(lambda: queue_depth(guest, "logs") == 4, timeout=10, what="four events")
    reported = sorted((e["id"], e["evento"]) for e in events(guest))
    assert reported == [("dead-1", "fallido"), ("ok-1", "consumido"), ("retry-1", "fallido"), ("retry-1", "reintento")]
    assert replay_dead_letters(roles["consumer_sms"], "cola_sms", progress=False) == 2
    assert queue_depth(guest, "cola_sms") == 2 and queue_depth(guest, "cola_sms.dlq") == 0


def test_a_consumer_is_refused_other_queues(roles: dict[str, str], guest: str) -> None:
    sms_role = roles["consumer_sms"]
    for queue in ("correos", "logs", "correos.dlq", "logs.dlq"):
        refused(sms_role, get(queue))
        refused(sms_role, consume(queue))
        refused(sms_role, purge(queue))
    refused(sms_role, declare("correos.retry.5s", **{"x-message-ttl": 5000}))
    refused(sms_role, declare("correos.dlq"))
    refused(sms_role, declare("anything-else"))
    for queue in SHARED:  # it may check them (passive), not redeclare or delete them
        allowed(sms_role, passive(queue))
        refused(sms_role, delete(queue))
        refused(sms_role, declare(queue))
    email_role = roles["consumer_email"]
    allowed(email_role, declare("correos.retry.5s", **{"x-message-ttl": 5000}))
    allowed(email_role, get("correos"))
    refused(email_role, get("cola_sms"))
    refused(email_role, declare("cola_sms.retry.5s", **{"x-message-ttl": 5000}))


def test_consumer_logs_reads_logs_and_its_dlq_only(roles: dict[str, str], guest: str) -> None:
    logs_role = roles["consumer_logs"]
    allowed(guest, confirmed_publish("logs"))
    method, _, _ = allowed(logs_role, lambda channel: channel.basic_get("logs", auto_ack=True))
    assert method is not None
    allowed(logs_role, get("logs.dlq"))
    allowed(logs_role, declare("logs.retry.5s", **{"x-message-ttl": 5000}))
    for queue in ("cola_sms", "correos", "cola_sms.dlq", "correos.dlq"):
        refused(logs_role, get(queue))
        refused(logs_role, purge(queue))
    refused(logs_role, delete("logs"))


def test_consumer_logs_hands_notifications_to_webhooks_and_reads_none(roles: dict[str, str], guest: str) -> None:
    logs_role = roles["consumer_logs"]
    assert allowed(logs_role, passive("webhooks")) == 0, "rabbitmq-setup created it"
    allowed(logs_role, confirmed_publish("webhooks"))
    assert queue_depth(guest, "webhooks") == 1
    for queue in ("webhooks", "webhook_deliveries", "webhook_deliveries.dlq"):
        refused(logs_role, get(queue))
    refused(logs_role, declare("webhook_deliveries.retry.10s", **{"x-message-ttl": 10000}))
    drain(guest, "webhooks")


def test_consumer_webhooks_does_its_work_with_its_own_role(roles: dict[str, str], guest: str) -> None:
    """Both of its loops as its own role: the fan-out publishes a delivery, the delivery loop
    retries it through its retry queue and dead-letters it; nothing of the messages' queues."""
    role = roles["consumer_webhooks"]
    policy = RetryPolicy(max_attempts=2, delays=parse_delays("200ms"))

    def fan(batch: Sequence[Delivery]) -> list[Outcome]:
        properties = pika.BasicProperties(delivery_mode=2)
        return [Done(publishes=(Publish("webhook_deliveries", d.body, properties),)) for d in batch]

    def fail(batch: Sequence[Delivery]) -> list[Outcome]:
        return [TransientFailure("receiver answered 500") for _ in batch]

    loops = (
        ConsumerLoop(url=role, queue="webhooks", handler=fan, report_to=None, declares=("webhook_deliveries",)),
        ConsumerLoop(url=role, queue="webhook_deliveries", handler=fail, report_to=None, policy=policy),
    )
    with running(loops[0]), running(loops[1]):
        allowed(roles["consumer_logs"], confirmed_publish("webhooks"))
        wait_until(lambda: queue_depth(guest, "webhook_deliveries.dlq") == 1, timeout=15, what="dead letter")
    for queue in (*SHARED, "cola_sms.dlq", "logs.dlq"):
        refused(role, get(queue))
        refused(role, purge(queue))
    refused(role, declare("cola_sms.retry.5s", **{"x-message-ttl": 5000}))
    refused(role, delete("webhooks"))
    drain(guest, "webhook_deliveries.dlq")


def test_the_monitor_reads_depth_and_reports_but_touches_no_message(roles: dict[str, str], guest: str) -> None:
    monitor = roles["monitor"]
    allowed(guest, confirmed_publish("cola_sms"))
    source = AmqpDepth(monitor, "cola_sms")
    try:
        assert source.read().ready == 1
    finally:
        source.close()
    assert EventPublisher(monitor, clock=FixedClock(NOW)).publish([{"evento": "escalado", "id": "m-1"}])
    assert queue_depth(guest, "logs") == 1
    for queue in (*SHARED, "cola_sms.dlq"):
        refused(monitor, get(queue))
        refused(monitor, consume(queue))
        refused(monitor, purge(queue))
        refused(monitor, delete(queue))
        refused(monitor, declare(queue))
    # It reports on logs through logs' route exchange, and can publish nowhere else.
    for queue in (*SHARED, "cola_sms.dlq"):
        refused(monitor, confirmed_publish(queue))
    refused(monitor, _publish_to_exchange("cartero.cola_sms"))
    assert queue_depth(guest, "cola_sms") == 1 and queue_depth(guest, "logs") == 1


def test_the_php_role_does_what_the_php_services_do_and_nothing_more(roles: dict[str, str], guest: str) -> None:
    php = roles["php"]

    def php_sender_and_consumer(channel: BlockingChannel) -> bytes:
        for queue in SHARED:
            # queue_declare('cola_sms', false, true, false, false), as the PHP services do.
            channel.queue_declare(queue, passive=False, durable=True, exclusive=False, auto_delete=False)
        channel.basic_publish("", "cola_sms", b'{"id": "php-1"}')
        channel.basic_publish("", "correos", b'{"id": "php-2"}')
        channel.basic_publish("", "logs", b'{"id": "php-3"}')
        method, _, body = channel.basic_get("cola_sms")
        assert method is not None
        channel.basic_ack(method.delivery_tag)
        return bytes(body)

    assert allowed(php, php_sender_and_consumer) == b'{"id": "php-1"}'
    assert [queue_depth(guest, q) for q in SHARED] == [0, 1, 1]
    for queue in ("logs", "correos"):
        refused(php, purge(queue))
        refused(php, get(queue))
        refused(php, consume(queue))
    for queue in ("cola_sms.dlq", "correos.dlq", "logs.dlq"):
        refused(php, get(queue))
        refused(php, purge(queue))
        refused(php, declare(queue))
        refused(php, delete(queue))
    refused(php, declare("cola_sms.retry.5s", **{"x-message-ttl": 5000}))
    refused(php, declare("php-own-queue"))
    # Not refusable: basic_get needs `read` on cola_sms, and `read` is also what purge needs.


def test_dead_letters_reads_the_dlqs_and_replays_through_the_route_exchanges_only(
    roles: dict[str, str], guest: str
) -> None:
    role = roles["dead_letters"]
    dead = pika.BasicProperties(message_id="d-1", delivery_mode=2, headers={"x-cartero-reason": "bad"})

    def dead_letters(channel: BlockingChannel) -> None:
        for dlq in ("cola_sms.dlq", "logs.dlq"):
            channel.basic_publish("", dlq, b'{"id": "d-1"}', dead)

    allowed(guest, dead_letters)
    queues = DeadLetterQueues(role)
    assert queues.counts() == {"cola_sms.dlq": 1, "correos.dlq": 0, "logs.dlq": 1}
    assert [held.id for held in queues.browse("cola_sms.dlq", 10)] == ["d-1"]
    assert queues.replay("cola_sms.dlq", None).done == ["d-1"]
    assert queues.discard("logs.dlq", {"d-1"}).done == ["d-1"]
    assert queue_depth(guest, "cola_sms") == 1 and queue_depth(guest, "cola_sms.dlq") == 0
    assert queue_depth(guest, "logs.dlq") == 0
    for queue in SHARED:
        refused(role, get(queue))
        refused(role, consume(queue))
        refused(role, purge(queue))
        refused(role, delete(queue))
        refused(role, declare(queue))
        refused(role, confirmed_publish(queue))  # not the default exchange
    for queue in ("cola_sms.dlq", "cola_sms.retry.5s"):
        refused(role, confirmed_publish(queue))
        refused(role, delete(queue))
    refused(role, declare("dead-letters-own-queue"))
    assert queue_depth(guest, "cola_sms") == 1
