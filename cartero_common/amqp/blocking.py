"""Blocking AMQP helpers on pika: connection parameters, the shared topology, confirmed publishing.

The consume loop built on these lives in `cartero_common/consume/`; the sender's asyncio
publisher in `publisher.py`. Every URL argument named `urls` is an `AMQP_URL`: one node or a
comma-separated list of them (`urls.py`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from cartero_common.amqp.queue_type import CLASSIC, QueueType, declare_arguments
from cartero_common.amqp.silent_nodes import pika_tcp_options
from cartero_common.amqp.tls import context_for
from cartero_common.amqp.urls import failover_order, split_urls
from cartero_common.wire import SHARED_QUEUES, route_exchange

log = logging.getLogger(__name__)

PERSISTENT = pika.DeliveryMode.Persistent
JSON = "application/json"


def connection_parameters(
    url: str, *, heartbeat: int = 30, timeout: float = 5.0, name: str | None = None, ca_file: Path | None = None
) -> pika.URLParameters:
    """One node's parameters. `ca_file`: for an `amqps://` URL, the CA to verify the broker
    against (None: AMQP_CA_FILE, else the system's trust store; see `tls.py`). An `ssl_options`
    in the URL itself wins."""
    params = pika.URLParameters(url)
    context = context_for(url, ca_file)
    if context is not None and "ssl_options" not in urlsplit(url).query:
        params.ssl_options = pika.SSLOptions(context, server_hostname=params.host)
    params.heartbeat = heartbeat
    if name:
        # Shown by the management UI and API, so an operator (or a test) can find this connection.
        params.client_properties = {"connection_name": name}
    params.blocked_connection_timeout = 60
    params.socket_timeout = timeout
    params.connection_attempts = 1
    params.tcp_options = pika_tcp_options()  # a node cut off is left in seconds (`silent_nodes.py`)
    return params


def node_parameters(
    urls: str, *, heartbeat: int = 30, timeout: float = 5.0, name: str | None = None, ca_file: Path | None = None
) -> list[pika.URLParameters]:
    """Each node of an `AMQP_URL` list (`urls.py`), in the order to try them: from a random one,
    then round the list."""
    return [
        connection_parameters(url, heartbeat=heartbeat, timeout=timeout, name=name, ca_file=ca_file)
        for url in failover_order(split_urls(urls))
    ]


def connect(
    urls: str, *, heartbeat: int = 30, timeout: float = 5.0, name: str | None = None, ca_file: Path | None = None
) -> pika.BlockingConnection:
    """A connection to one node of the `AMQP_URL` list `urls`: pika tries them in turn
    (`node_parameters`), each once, and raises only if none answers."""
    nodes = node_parameters(urls, heartbeat=heartbeat, timeout=timeout, name=name, ca_file=ca_file)
    return pika.BlockingConnection(nodes)


def ensure_queue(
    channel: BlockingChannel, queue: str, *, queue_type: QueueType = CLASSIC
) -> tuple[BlockingChannel, int]:
    """`queue` exists afterwards; returns the channel to go on with and the messages ready in it.

    A passive declare first: it needs no permission on the queue, so a role without `configure`
    on the shared queues (the sender, the monitor, the consumers) still starts once
    `rabbitmq-setup` has created them, and cannot delete them. Only a queue that is missing is
    declared: classic, durable with no arguments, exactly what the PHP services' `queue_declare(q,
    false, true, false, false)` declares, so both sides can declare it in any order without a
    406; quorum, with `x-queue-type` (`queue_type.py` says why). The broker closes a channel
    whose passive declare finds nothing, hence the fresh channel."""
    try:
        return channel, int(channel.queue_declare(queue=queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
    channel = channel.connection.channel()
    declared = channel.queue_declare(queue=queue, durable=True, arguments=declare_arguments(queue_type) or None)
    return channel, int(declared.method.message_count)


def ensure_route(channel: BlockingChannel, queue: str) -> BlockingChannel:
    """`route_exchange(queue)` exists and is bound to `queue`; returns the channel to go on with.
    As with `ensure_queue`, a passive declare first (no permission needed): `rabbitmq-setup`
    created and bound it where the roles have no `configure`; elsewhere (a broker as guest) it
    is declared durable and bound here."""
    exchange = route_exchange(queue)
    try:
        channel.exchange_declare(exchange=exchange, passive=True)
        return channel
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
    channel = channel.connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)
    channel.queue_bind(queue=queue, exchange=exchange, routing_key=queue)
    return channel


def declare_shared_queues(
    channel: BlockingChannel, queues: Iterable[str] = SHARED_QUEUES, *, queue_type: QueueType = CLASSIC
) -> BlockingChannel:
    """Each of `queues` made sure of (`ensure_queue`); returns the channel to go on with."""
    for queue in queues:
        channel, _ = ensure_queue(channel, queue, queue_type=queue_type)
    return channel


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. orjson writes the same bytes as `json.dumps(ensure_ascii=False,
    separators=(",", ":"))` for what a message holds, several times faster (one event per
    consumed message); what it refuses (integers over 64 bits, keys that are not strings) goes
    through the standard encoder. The one difference: a NaN or infinity (only a lenient parse
    of a foreign message can produce one) is written as `null`, which every JSON reader takes,
    where the standard encoder wrote a bare `NaN` that PHP's `json_decode` refuses."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def message_properties(
    message_id: str | None, *, now: datetime, headers: dict[str, Any] | None = None
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=JSON,
        content_encoding="utf-8",
        delivery_mode=PERSISTENT,
        message_id=message_id,
        timestamp=int(now.timestamp()),
        headers=headers,
    )


class ConfirmedPublisher:
    """A channel in confirm mode: `publish` returns only once the broker has the message.

    `mandatory` makes an unroutable message an error instead of a silent drop.
    """

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        if not getattr(channel, "_delivery_confirmation", False):
            channel.confirm_delivery()

    def publish(
        self,
        queue: str,
        payload: dict[str, Any] | bytes,
        *,
        message_id: str | None,
        now: datetime,
        headers: dict[str, Any] | None = None,
        exchange: str = "",
    ) -> None:
        body = payload if isinstance(payload, bytes) else encode(payload)
        self.channel.basic_publish(
            exchange=exchange,
            routing_key=queue,
            body=body,
            properties=message_properties(message_id, now=now, headers=headers),
            mandatory=True,
        )


def wait_for_broker(url: str, *, timeout: float) -> bool:
    """True once a connection to a node of `url` (an `AMQP_URL` list) opens; False if `timeout`
    seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect(url, timeout=2.0).close()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
