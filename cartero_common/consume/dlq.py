"""Moving dead letters back to work: `python -m consumer_sms replay-dlq [--limit N]`."""

from __future__ import annotations

import sys
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from cartero_common.amqp.blocking import PERSISTENT, connect, declare_shared_queues
from cartero_common.amqp.queue_type import CLASSIC, QueueType, declare_arguments
from cartero_common.amqp.topology import dead_letter_queue

REPLAYS_HEADER = "x-cartero-replays"
PROGRESS_FROM = 100  # below this many, a progress bar is noise


def replay_dead_letters(
    url: str, queue: str, *, limit: int | None = None, progress: bool = True, queue_type: QueueType = CLASSIC
) -> int:
    """Move up to `limit` messages (all of them by default) from `<queue>.dlq` back to `queue`,
    oldest first, each published with confirms before its dead letter is acked; returns how
    many moved. Only what was there at the start moves, so a message that fails again and
    comes back to the DLQ during the replay is not replayed twice."""
    dlq = dead_letter_queue(queue)
    connection = connect(url, name=f"replay-dlq {queue}")
    try:
        channel = declare_shared_queues(connection.channel(), (queue,), queue_type=queue_type)
        arguments = declare_arguments(queue_type) or None
        waiting = channel.queue_declare(dlq, durable=True, arguments=arguments).method.message_count
        total = waiting if limit is None else min(limit, waiting)
        channel.confirm_delivery()
        bar = _progress_bar(total, dlq, queue) if progress and total >= PROGRESS_FROM else None
        moved = 0
        try:
            while moved < total:
                method, properties, body = channel.basic_get(dlq, auto_ack=False)
                if method is None:
                    break
                move_back(channel, method.delivery_tag, properties, body, queue=queue)
                moved += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return moved
    finally:
        connection.close()


def move_back(
    channel: BlockingChannel,
    delivery_tag: int,
    properties: pika.BasicProperties,
    body: bytes,
    *,
    queue: str,
    exchange: str = "",
) -> None:
    """Publish a dead letter's fresh copy to `queue` (through `exchange`), then ack the dead letter.
    `channel` is in confirm mode, so the publish returns only once the broker holds the copy (an
    unroutable or refused copy raises, and the dead letter stays where it was); a crash between
    the two leaves a duplicate, which the consumers' dedupe by `id` absorbs, never a loss."""
    channel.basic_publish(exchange, queue, body, replay_properties(properties), mandatory=True)
    channel.basic_ack(delivery_tag)


def replay_properties(properties: pika.BasicProperties) -> pika.BasicProperties:
    """The message as first sent, attempts starting again from one; how often it was replayed
    is kept in `x-cartero-replays`."""
    headers = {k: v for k, v in (properties.headers or {}).items() if not k.startswith("x-")}
    replays = (properties.headers or {}).get(REPLAYS_HEADER, 0)
    headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
    return pika.BasicProperties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        delivery_mode=PERSISTENT,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        headers=headers,
    )


def _progress_bar(total: int, source: str, target: str) -> Any:
    from tqdm import tqdm  # only the replay command needs it

    return tqdm(total=total, desc=f"{source} → {target}", unit="msg", file=sys.stderr)
