"""The dead letters panel's broker side on quorum DLQs (CARTERO_QUEUE_TYPE=quorum): a listing
gives every message back in its place, a replay moves only what was asked for.

A quorum queue takes back what a closed connection held through its log, a moment after the
close: a listing or replay started within that moment counts fewer messages (seen now and then
in a loop of back-to-back listings on 3.10.8, not on a classic DLQ). Nothing is lost, and the panel's
operations are a person's clicks apart; the test waits for the returns as that pause would."""

from __future__ import annotations

import pika

from cartero_common.amqp import RetryPolicy, declare_topology
from dead_letters.broker import DeadLetterQueues
from tests.support import isolated_vhost, queue_depth, wait_until


def test_listing_and_replaying_a_quorum_dlq() -> None:
    with isolated_vhost("cartero-qdl") as url:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            declare_topology(connection.channel(), "cola_sms", RetryPolicy(max_attempts=1), queue_type="quorum")
            channel = connection.channel()
            channel.confirm_delivery()
            for n in range(5):
                properties = pika.BasicProperties(message_id=f"m{n}", delivery_mode=2)
                channel.basic_publish("", "cola_sms.dlq", b"{}", properties, mandatory=True)
        finally:
            connection.close()
        queues = DeadLetterQueues(url)

        def returned(count: int) -> None:
            wait_until(lambda: queue_depth(url, "cola_sms.dlq") == count, timeout=10, what="the returns")

        for _ in range(3):  # each listing gives back what it read, in order
            assert [held.id for held in queues.browse("cola_sms.dlq", 10)] == ["m0", "m1", "m2", "m3", "m4"]
            returned(5)
        moved = queues.replay("cola_sms.dlq", {"m2"})
        assert (moved.done, moved.not_found) == (["m2"], [])
        returned(4)
        assert [held.id for held in queues.browse("cola_sms.dlq", 10)] == ["m0", "m1", "m3", "m4"]
        assert queue_depth(url, "cola_sms") == 1
