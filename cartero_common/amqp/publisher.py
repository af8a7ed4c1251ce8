"""The asyncio publisher: one long-lived robust connection, publisher confirms, bounded waits.

The sender answers 202 only after `publish` returned, i.e. after the broker confirmed a
persistent, routed message. Every wait is bounded so a broker outage becomes a quick 503, not a
hung request.

A publish that did not return ends one of two ways, and they must not be confused:

- `BrokerUnavailable`: the broker certainly does not hold the message. There was no connection to
  send it on, or the broker answered `basic.nack`, or it returned the message as unroutable.
- `PublishUnconfirmed`: the message went out and no answer came within the timeout, or the
  connection dropped while it was in flight. The broker may hold it (a broker under a memory or
  disk alarm, or behind a slow link, takes it late). The wait for the confirm goes on after the
  caller gave up: `PublishUnconfirmed.late` resolves when the broker answers at last.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from ssl import SSLContext

import aio_pika
from aio_pika import ExchangeType
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity, DeliveryError, PublishError
from pamqp import commands

from cartero_common.amqp.queue_type import CLASSIC, QueueType, declare_arguments
from cartero_common.amqp.tls import context_for
from cartero_common.wire import SHARED_QUEUES, route_exchange

log = logging.getLogger(__name__)


# How long a confirm is still awaited after the caller stopped waiting. A broker that answers
# later than this is treated like a lost connection: the outcome stays unknown, for
# reconciliation to settle.
LATE_CONFIRM_WINDOW_S = 120.0


class BrokerUnavailable(Exception):
    """The broker certainly did not take the message (no connection, nack, unroutable)."""


class LateAnswer(enum.StrEnum):
    """What finally became of a publish that had no answer in time."""

    ACK = "ack"  # the broker holds the message
    NACK = "nack"  # it refused it
    RETURNED = "returned"  # unroutable: not queued
    LOST = "lost"  # the connection dropped, or no answer within LATE_CONFIRM_WINDOW_S


class PublishUnconfirmed(Exception):
    """The broker may hold the message: no confirm within the timeout, or the connection dropped."""

    def __init__(self, reason: str, late: asyncio.Future[LateAnswer]) -> None:
        super().__init__(reason)
        self.late = late

    @classmethod
    def never_answered(cls, reason: str) -> PublishUnconfirmed:
        """An unknown outcome no broker answer will settle (the connection is gone, or the copy
        that might be held went out earlier): its `late` is already LOST."""
        lost: asyncio.Future[LateAnswer] = asyncio.get_running_loop().create_future()
        lost.set_result(LateAnswer.LOST)
        return cls(reason, lost)


class AsyncPublisher:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        queues: Iterable[str] = SHARED_QUEUES,
        ca_file: Path | None = None,
        queue_type: QueueType = CLASSIC,
    ) -> None:
        """`ca_file`: for an `amqps://` URL, the CA the broker's certificate must chain to (None:
        AMQP_CA_FILE, else the system's trust store; see `cartero_common/amqp/tls.py`).
        `queue_type`: CARTERO_QUEUE_TYPE, the type a missing queue is declared with."""
        self.queue_type = queue_type
        self.url = url
        self.ssl_context = context_for(url, ca_file)
        self.timeout = timeout
        self.queues = tuple(queues)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}  # queue → its route exchange, on the channel
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def _ensure_channel(self) -> AbstractRobustChannel:
        if self.connected:
            assert self._channel is not None
            return self._channel
        async with self._lock:
            if self.connected:
                assert self._channel is not None
                return self._channel
            await self._close_quietly()
            await _ensure_queues(
                self.url, self.queues, timeout=self.timeout, ssl_context=self.ssl_context, queue_type=self.queue_type
            )
            connection = await aio_pika.connect_robust(self.url, timeout=self.timeout, ssl_context=self.ssl_context)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._connection = connection
            self._channel = channel
            self._exchanges = {q: await channel.get_exchange(route_exchange(q), ensure=False) for q in self.queues}
            log.info("connected to the broker")
            return channel

    async def start(self) -> None:
        """Connect now if the broker is there; if not, the first publish retries."""
        try:
            await asyncio.wait_for(self._ensure_channel(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - startup must not fail on a broker outage
            log.warning("broker not reachable at startup", extra={"error": str(exc)})

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self._ensure_channel(), self.timeout)
        except Exception:  # noqa: BLE001
            return False
        return True

    async def publish(self, queue: str, body: bytes, *, message_id: str | None, now: datetime) -> None:
        """Return once the broker confirmed the message; else `BrokerUnavailable` (certainly not
        taken) or `PublishUnconfirmed` (it may have been)."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            timestamp=now,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                channel = await self._ensure_channel()
        except TimeoutError as exc:
            raise BrokerUnavailable(f"no connection to the broker within {self.timeout}s") from exc
        except Exception as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        # Its own task, never cancelled: once the frames may have gone out, only the broker's
        # answer tells what happened, and that answer is wanted even after the caller gave up.
        exchange = self._exchanges.get(queue) or await channel.get_exchange(route_exchange(queue), ensure=False)
        sending = loop.create_task(exchange.publish(message, routing_key=queue, mandatory=True))
        done, _ = await asyncio.wait({sending}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            raise PublishUnconfirmed(f"no confirm from the broker within {self.timeout}s", _late_answer(sending))
        failure = sending.exception()
        if failure is None:
            if isinstance(sending.result(), commands.Basic.Ack):
                return
            raise BrokerUnavailable(f"the broker refused the message: {type(sending.result()).__name__}")
        if isinstance(failure, PublishError):
            raise BrokerUnavailable("the broker returned the message as unroutable") from failure
        if isinstance(failure, DeliveryError):
            raise BrokerUnavailable("the broker refused the message (basic.nack)") from failure
        # The connection or channel went away with the publish in flight.
        raise PublishUnconfirmed.never_answered(str(failure) or type(failure).__name__) from failure

    async def _close_quietly(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.close()
            except Exception:  # noqa: BLE001
                pass
        self._connection = None
        self._channel = None

    async def close(self) -> None:
        async with self._lock:
            await self._close_quietly()


async def _ensure_queues(
    url: str,
    queues: Iterable[str],
    *,
    timeout: float,
    ssl_context: SSLContext | None,
    queue_type: QueueType = CLASSIC,
) -> None:
    """Each queue checked by a passive declare, which needs no permission (the sender's role has
    no `configure`: it can neither create nor delete a queue); one that is missing is declared
    durable and, when classic, argument-free, as the PHP services do (`blocking.ensure_queue`
    says why); when quorum, with `x-queue-type`.

    On a plain connection of its own, closed at once: the broker closes the channel of a passive
    declare that finds nothing, and a robust channel would reopen itself and redo it."""
    connection = await aio_pika.connect(url, timeout=timeout, ssl_context=ssl_context)
    try:
        for queue in queues:
            channel = await connection.channel(publisher_confirms=False)
            try:
                await channel.declare_queue(queue, passive=True)
            except ChannelNotFoundEntity:
                channel = await connection.channel(publisher_confirms=False)
                await channel.declare_queue(queue, durable=True, arguments=declare_arguments(queue_type) or None)
            # The exchange the sender publishes through (`route_exchange`), the same way:
            # `rabbitmq-setup` made and bound it where the sender's role may not.
            try:
                await channel.declare_exchange(route_exchange(queue), passive=True)
            except ChannelNotFoundEntity:
                channel = await connection.channel(publisher_confirms=False)
                exchange = await channel.declare_exchange(route_exchange(queue), ExchangeType.DIRECT, durable=True)
                bound = await channel.declare_queue(queue, passive=True)
                await bound.bind(exchange, routing_key=queue)
    finally:
        await connection.close()


def _late_answer(sending: asyncio.Task[object]) -> asyncio.Future[LateAnswer]:
    """The broker's answer to a publish still in flight, once it comes (or LOST)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[LateAnswer] = loop.create_future()

    def settle(result: LateAnswer) -> None:
        if not answer.done():
            answer.set_result(result)

    def on_done(task: asyncio.Task[object]) -> None:
        if task.cancelled():
            settle(LateAnswer.LOST)
            return
        failure = task.exception()
        if failure is None:
            settle(LateAnswer.ACK if isinstance(task.result(), commands.Basic.Ack) else LateAnswer.NACK)
        elif isinstance(failure, PublishError):
            settle(LateAnswer.RETURNED)
        elif isinstance(failure, DeliveryError):
            settle(LateAnswer.NACK)
        else:
            settle(LateAnswer.LOST)

    sending.add_done_callback(on_done)
    give_up = loop.call_later(LATE_CONFIRM_WINDOW_S, settle, LateAnswer.LOST)
    answer.add_done_callback(lambda _: give_up.cancel())
    return answer
