"""The cluster itself: a quorum queue on three nodes keeps every confirmed message when the node
holding its leader is SIGKILLed, and the other two serve them."""

from __future__ import annotations

import time

import pika

from tests.cluster.netns_cluster import NetnsCluster

MESSAGES = 1_000


def connect(urls: list[str]) -> pika.BlockingConnection:
    """pika tries the parameters in turn: the first node that answers."""
    return pika.BlockingConnection([pika.URLParameters(url) for url in urls])


def read_back(urls: list[str], queue: str, count: int, *, timeout: float) -> list[bytes]:
    """Every message of `queue`, acked, reconnecting as a client must while the queue has no
    leader: the broker then answers a `basic.get` by closing the connection (541, nodedown)."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            connection = connect(urls)
        except pika.exceptions.AMQPConnectionError:
            time.sleep(0.2)
            continue
        try:
            channel = connection.channel()
            while len(got) < count and time.monotonic() < deadline:
                method, _, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    time.sleep(0.1)
                    continue
                channel.basic_ack(method.delivery_tag)
                got.append(body)
        except pika.exceptions.AMQPError:
            time.sleep(0.2)
        finally:
            if connection.is_open:
                connection.close()
    return got


def test_a_quorum_queue_keeps_every_confirmed_message_when_its_leaders_node_is_killed(whole: NetnsCluster) -> None:
    vhost = whole.new_vhost("cartero-quorum")
    victim = whole.node(1)
    urls = [node.amqp_url(vhost) for node in whole.nodes]  # the victim first: the client starts there
    connection = connect(urls)
    try:
        channel = connection.channel()
        channel.queue_declare("proof", durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        for n in range(MESSAGES):
            # BlockingChannel with confirms: returns once the broker acked (raises on a nack).
            channel.basic_publish("", "proof", f"m{n}".encode(), pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()
    # 3.10 places a quorum queue's leader on the node the declare came through.
    assert whole.leader(vhost, "proof") == victim.name

    victim.kill()
    killed_at = time.monotonic()
    got = read_back(urls[1:] + urls[:1], "proof", MESSAGES, timeout=30)
    served_after = time.monotonic() - killed_at
    new_leader = whole.leader(vhost, "proof")
    print(f"\n[cluster] {len(got)} of {MESSAGES} confirmed messages read back {served_after:.1f} s after the kill,")
    print(f"[cluster] leader moved {victim.name} → {new_leader}")
    assert sorted(got) == sorted(f"m{n}".encode() for n in range(MESSAGES))
    assert new_leader in {node.name for node in whole.nodes[1:]}
