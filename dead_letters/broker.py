"""The three DLQs on the broker: counted, browsed, and emptied message by message.

Browsing reads with `basic.get` and no ack, then closes the channel: the broker puts every
message back where it was (a classic queue keeps its order), flagged redelivered, which matters
to nobody since no consumer reads a DLQ. Replay and discard read the same way, settle the
messages asked for (replay through `move_back`: the copy confirmed before the dead letter is
acked) and give back the rest. One operation at a time per process, so a listing never hides a
message from a replay running beside it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from cartero_common.amqp.blocking import connect, ensure_route
from cartero_common.amqp.topology import dead_letter_queue
from cartero_common.consume.dlq import move_back
from cartero_common.wire import SHARED_QUEUES, route_exchange

QUEUES = tuple(dead_letter_queue(queue) for queue in SHARED_QUEUES)


@dataclass(frozen=True)
class Held:
    """A dead letter read and not yet settled."""

    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes

    @property
    def id(self) -> str | None:
        found = self.properties.message_id
        return None if found is None else str(found)

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


class Stopped(Exception):
    """The broker did not confirm a copy (or took the channel away): the message it was for, and
    every one after it, stay in the DLQ; `done` lists those already settled."""

    def __init__(self, done: list[str], reason: str) -> None:
        super().__init__(reason)
        self.done = done
        self.reason = reason


@dataclass(frozen=True)
class Moved:
    done: list[str]
    not_found: list[str]


class DeadLetterQueues:
    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()

    @contextmanager
    def _channel(self) -> Iterator[BlockingChannel]:
        with self._lock:
            connection = connect(self._url, name="dead_letters")
            try:
                yield connection.channel()
            finally:
                if connection.is_open:
                    connection.close()  # gives back every message read and not settled

    def counts(self) -> dict[str, int]:
        with self._channel() as channel:
            found = {}
            for dlq in QUEUES:
                channel, found[dlq] = _depth(channel, dlq)
            return found

    def browse(self, dlq: str, limit: int) -> list[Held]:
        with self._channel() as channel:
            return _read(channel, dlq, limit)

    def replay(self, dlq: str, ids: set[str] | None) -> Moved:
        """Every message of `ids` (all of them with None) back to its queue, oldest first."""
        queue = dlq.removesuffix(".dlq")
        with self._channel() as channel:
            channel = ensure_route(channel, queue)
            channel.confirm_delivery()
            return _settle(
                channel,
                dlq,
                ids,
                lambda held: move_back(
                    channel, held.delivery_tag, held.properties, held.body, queue=queue, exchange=route_exchange(queue)
                ),
            )

    def discard(self, dlq: str, ids: set[str]) -> Moved:
        with self._channel() as channel:
            return _settle(channel, dlq, ids, lambda held: channel.basic_ack(held.delivery_tag))


def _depth(channel: BlockingChannel, dlq: str) -> tuple[BlockingChannel, int]:
    """Messages ready in `dlq`, 0 for one no consumer has declared yet (the broker closes the
    channel of a passive declare that finds nothing: the caller goes on with a fresh one)."""
    try:
        return channel, int(channel.queue_declare(dlq, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
    return channel.connection.channel(), 0


def _read(channel: BlockingChannel, dlq: str, limit: int) -> list[Held]:
    """At most `limit` messages of what was there when the read began, unacked."""
    channel, waiting = _depth(channel, dlq)
    held: list[Held] = []
    while len(held) < min(limit, waiting):
        method, properties, body = channel.basic_get(dlq, auto_ack=False)
        if method is None:
            break
        held.append(Held(int(method.delivery_tag), properties, bytes(body)))
    return held


def _settle(channel: BlockingChannel, dlq: str, ids: set[str] | None, action: Any) -> Moved:
    done: list[str] = []
    for held in _read(channel, dlq, 10**9 if ids is None else 10**6):
        if ids is None or (held.id is not None and held.id in ids):
            try:
                action(held)
            except pika.exceptions.AMQPError as exc:
                raise Stopped(done, type(exc).__name__) from None
            done.append(held.id or "")
            if ids is not None and len(done) == len(ids):
                break
    wanted = ids or set()
    return Moved(done, sorted(wanted - set(done)))
