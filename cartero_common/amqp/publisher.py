"""The asyncio publisher: one long-lived connection to a node of the list, publisher confirms,
bounded waits.

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
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from ssl import SSLContext
from typing import Any

import aio_pika
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from aiormq.exceptions import ChannelNotFoundEntity, DeliveryError, PublishError
from pamqp import commands
from pamqp.common import FieldValue
from yarl import URL

from cartero_common.amqp.queue_type import CLASSIC, QueueType, declare_arguments
from cartero_common.amqp.silent_nodes import set_user_timeout
from cartero_common.amqp.tls import context_for
from cartero_common.amqp.urls import failover_order, node_label, split_urls
from cartero_common.wire import SHARED_QUEUES, route_exchange

log = logging.getLogger(__name__)


# How long a confirm is still awaited after the caller stopped waiting. A broker that answers
# later than this is treated like a lost connection: the outcome stays unknown, for
# reconciliation to settle.
LATE_CONFIRM_WINDOW_S = 120.0
SWAP_EVERY_S = 1.0  # at most one new channel after refused or unanswered publishes this often
# Channels replaced kept open for their late confirms: every one replaced within the window.
# For the first YOUNG_S of a connection (just after a failover), a publish unanswered for
# STALL_S already moves to a new channel, up to every YOUNG_SWAP_EVERY_S.
YOUNG_S = 10.0
STALL_S = 0.5
YOUNG_SWAP_EVERY_S = 0.5
MAX_RETIRED = int(LATE_CONFIRM_WINDOW_S / SWAP_EVERY_S) + int(YOUNG_S / YOUNG_SWAP_EVERY_S) + 1


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


class UserTimeoutTransport(TransportFactory):
    """aiormq's own transport for the URL's scheme, with `TCP_USER_TIMEOUT` on its socket
    (`silent_nodes.py` says why)."""

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        inner = TLSTransportFactory() if url.scheme == "amqps" else TCPTransportFactory()
        reader, writer = await inner.create(url, **kwargs)
        set_user_timeout(writer.get_extra_info("socket"))
        return reader, writer


class UserTimeoutConnection(aio_pika.Connection):
    """An aio-pika connection on `UserTimeoutTransport`: `aio_pika.connect(...,
    connection_class=UserTimeoutConnection)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kwargs["transport_factory"] = UserTimeoutTransport()


Exchanges = dict[str, AbstractExchange]  # queue → its route exchange, on one channel


class AsyncPublisher:
    """Publishes through one connection to one node of an `AMQP_URL` list, kept by a task of its
    own (`start`): aio-pika connects to one host only, so the failover is here. The task opens a
    connection to a random node, and when it is lost goes on to the next node at once, then
    round the list, pausing `reconnect_interval` after each round that found none: a node that
    is reachable again is used within about that much. A publish never waits for a connection:
    with none, it fails at once (`BrokerUnavailable`, a 503), so no request hangs on an outage.

    Plain connections, not aio-pika's robust ones: a robust connection would reconnect to its
    own node only, and redo declares on a channel the broker may close on purpose."""

    def __init__(
        self,
        urls: str,
        *,
        timeout: float = 2.0,
        queues: Iterable[str] = SHARED_QUEUES,
        ca_file: Path | None = None,
        queue_type: QueueType = CLASSIC,
        heartbeat: int = 5,
        reconnect_interval: float = 0.25,
        name: str | None = None,
    ) -> None:
        """`urls`: AMQP_URL, one node or a list (`urls.py`). `ca_file`: for `amqps://`, the CA
        the broker's certificate must chain to (None: AMQP_CA_FILE, else the system's trust
        store; see `cartero_common/amqp/tls.py`). `queue_type`: CARTERO_QUEUE_TYPE, the type a
        missing queue is declared with. `heartbeat`: seconds; a node that stops answering
        (cut off, not closed) is given up after 3 × (heartbeat + 1) seconds without a frame from
        it (aiormq's rule)."""
        self.nodes = failover_order(split_urls(urls))
        self.ssl_contexts = {node: context_for(node, ca_file) for node in self.nodes}
        self.timeout = timeout
        self.queues = tuple(queues)
        self.queue_type = queue_type
        self.heartbeat = heartbeat
        self.reconnect_interval = reconnect_interval
        self.client_properties: dict[str, FieldValue] = {"connection_name": name} if name else {}
        self.node: str | None = None  # the node connected to, if any
        self.last_error: BaseException | None = None  # why the last attempt to connect failed
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: Exchanges = {}
        self._lost = asyncio.Event()  # set when the connection or its channel closes
        self._up = asyncio.Event()  # set while connected
        self._keeper: asyncio.Task[None] | None = None
        # Channels replaced after a nack, closed once their other confirms had time to come.
        self._retired: deque[asyncio.Task[None]] = deque()
        self._swapping: asyncio.Task[None] | None = None
        self._swapped_at = -SWAP_EVERY_S
        self._opened_at = 0.0  # when the current connection opened (the loop's clock)
        self._closed = False

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def start(self) -> None:
        """Start keeping a connection, and wait up to `timeout` for the first one; a broker that
        is not there yet is not an error (publishes fail until it is)."""
        if self._keeper is None and not self._closed:
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="amqp-publisher-keeper")
        try:
            await asyncio.wait_for(self._up.wait(), self.timeout)
        except TimeoutError:
            log.warning(
                "no broker node reachable at startup; publishes fail until one is", extra={"nodes": len(self.nodes)}
            )

    async def ping(self) -> bool:
        """Connected now (never waits, but for a publisher not started yet: see `start`)."""
        if self._keeper is None:
            await self.start()
        return self.connected

    async def _keep(self) -> None:
        turn = 0
        refused = 0
        while True:
            node = self.nodes[turn % len(self.nodes)]
            turn += 1
            try:
                await asyncio.wait_for(self._open(node), self.timeout)
            except Exception as exc:  # noqa: BLE001 - any failure: try the next node
                self.last_error = exc
                refused += 1
                if refused <= len(self.nodes) or refused % (40 * len(self.nodes)) == 0:
                    log.warning("broker node not reachable", extra={"node": node_label(node), "error": repr(exc)})
                if refused % len(self.nodes) == 0:
                    await asyncio.sleep(self.reconnect_interval)
                continue
            if refused:
                log.info("connected to the broker", extra={"node": node_label(node), "after_attempts": refused})
            else:
                log.info("connected to the broker", extra={"node": node_label(node)})
            refused = 0
            opened = asyncio.get_running_loop().time()
            await self._lost.wait()
            log.warning("broker connection lost; trying the next node", extra={"node": node_label(node)})
            await self._drop()
            if asyncio.get_running_loop().time() - opened < 1.0:
                # Lost as soon as it opened: a pause, so a node that keeps doing it cannot spin.
                await asyncio.sleep(self.reconnect_interval)

    async def _open(self, node: str) -> None:
        ssl_context = self.ssl_contexts[node]
        await _ensure_queues(
            node, self.queues, timeout=self.timeout, ssl_context=ssl_context, queue_type=self.queue_type
        )
        connection = await aio_pika.connect(
            node,
            timeout=self.timeout,
            ssl_context=ssl_context,
            client_properties=self.client_properties or None,
            heartbeat=self.heartbeat,
            connection_class=UserTimeoutConnection,
        )
        try:
            channel, exchanges = await self._open_channel(connection)
        except BaseException:
            await _close_quietly(connection)
            raise
        self._lost.clear()
        self._connection, self._channel, self._exchanges, self.node = connection, channel, exchanges, node
        connection.close_callbacks.add(self._when_closed(connection))
        channel.close_callbacks.add(self._when_closed(channel))
        if connection.is_closed or channel.is_closed:
            self._lost.set()
        else:
            self._opened_at = asyncio.get_running_loop().time()
            self._up.set()

    async def _open_channel(self, connection: AbstractConnection) -> tuple[AbstractChannel, Exchanges]:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return channel, {q: await channel.get_exchange(route_exchange(q), ensure=False) for q in self.queues}

    def _when_closed(self, owner: AbstractConnection | AbstractChannel) -> Callable[..., None]:
        """A close callback that counts only while `owner` is the connection or channel in use:
        one closed on purpose, or left behind by a failover, must not end its successor."""

        def closed(*_: object) -> None:
            if owner is self._connection or owner is self._channel:
                self._up.clear()
                self._lost.set()

        return closed

    async def _drop(self) -> None:
        connection, self._connection, self._channel, self.node = self._connection, None, None, None
        self._up.clear()
        if connection is not None:
            await _close_quietly(connection)

    def _fresh_channel(self, refused: AbstractChannel) -> None:
        """Have the publishes after a refused or unanswered one go on a new channel. On RabbitMQ
        3.10 a channel whose first publish to a quorum queue reached the broker while the
        queue's leader was out of reach keeps to that leader after a new one took over: it
        refuses every publish when the old leader's node is dead, and leaves them unanswered
        when that node is cut off, until it comes back (tests/cluster). A new channel is served.
        In the background, so the publish is answered at once, and at most once per
        SWAP_EVERY_S, so a broker that refuses everything does not get a channel per publish.
        The old channel stays open for its late confirms (a broker that is merely slow still
        answers them there)."""
        loop = asyncio.get_running_loop()
        young = loop.time() - self._opened_at < YOUNG_S
        every = YOUNG_SWAP_EVERY_S if young else SWAP_EVERY_S
        if refused is not self._channel or self._swapping is not None or loop.time() - self._swapped_at < every:
            return
        self._swapped_at = loop.time()
        self._swapping = loop.create_task(self._swap(refused))
        self._swapping.add_done_callback(lambda _: setattr(self, "_swapping", None))

    async def _swap(self, refused: AbstractChannel) -> None:
        connection = self._connection
        if connection is None or connection.is_closed or self._channel is not refused:
            return  # the connection is going anyway
        try:
            channel, exchanges = await asyncio.wait_for(self._open_channel(connection), self.timeout)
        except Exception as exc:  # noqa: BLE001 - the old channel goes on
            # A slow broker opens it late, a dead connection never: the heartbeat and
            # TCP_USER_TIMEOUT tell those apart, not this.
            log.warning("no new channel after a refused or unanswered publish", extra={"error": repr(exc)})
            return
        if connection is not self._connection or self._channel is not refused:
            await _close_quietly(channel)  # a failover happened meanwhile
            return
        self._channel, self._exchanges = channel, exchanges
        channel.close_callbacks.add(self._when_closed(channel))
        if channel.is_closed:
            self._up.clear()
            self._lost.set()
        log.info("publishing on a new channel after a refused or unanswered publish")
        self._retired.append(asyncio.get_running_loop().create_task(_close_later(refused, LATE_CONFIRM_WINDOW_S)))
        while len(self._retired) > MAX_RETIRED or (self._retired and self._retired[0].done()):
            self._retired.popleft().cancel()  # closes that channel now (`_close_later`)

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
        if self._closed:
            raise BrokerUnavailable("the publisher is closed")
        if self._keeper is None:
            await self.start()  # a publisher used without `start`: the first publish waits for it
        channel = self._channel
        if not self.connected or channel is None:
            why = f" (last attempt: {self.last_error!r})" if self.last_error is not None else ""
            raise BrokerUnavailable(f"no connection to any broker node{why}")
        loop = asyncio.get_running_loop()
        # Its own task, never cancelled: once the frames may have gone out, only the broker's
        # answer tells what happened, and that answer is wanted even after the caller gave up.
        exchange = self._exchanges.get(queue) or await channel.get_exchange(route_exchange(queue), ensure=False)
        deadline = loop.time() + self.timeout
        sending = loop.create_task(exchange.publish(message, routing_key=queue, mandatory=True))
        done, _ = await asyncio.wait({sending}, timeout=min(STALL_S, self.timeout))
        if not done and loop.time() - self._opened_at < YOUNG_S:
            # Just after a failover the queue may still be electing its leader, and a channel
            # that published meanwhile can stall (`_fresh_channel`): do not wait out the timeout.
            self._fresh_channel(channel)
        if not done:
            done, _ = await asyncio.wait({sending}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            self._fresh_channel(channel)
            raise PublishUnconfirmed(f"no confirm from the broker within {self.timeout}s", _late_answer(sending))
        failure = sending.exception()
        if failure is None:
            if isinstance(sending.result(), commands.Basic.Ack):
                return
            self._fresh_channel(channel)
            raise BrokerUnavailable(f"the broker refused the message: {type(sending.result()).__name__}")
        if isinstance(failure, PublishError):
            raise BrokerUnavailable("the broker returned the message as unroutable") from failure
        if isinstance(failure, DeliveryError):
            self._fresh_channel(channel)
            raise BrokerUnavailable("the broker refused the message (basic.nack)") from failure
        # The connection or channel went away with the publish in flight.
        raise PublishUnconfirmed.never_answered(str(failure) or type(failure).__name__) from failure

    async def close(self) -> None:
        self._closed = True
        pending = [task for task in (self._keeper, self._swapping, *self._retired) if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._keeper, self._swapping = None, None
        self._retired.clear()
        await self._drop()


async def _close_quietly(closable: AbstractConnection | AbstractChannel) -> None:
    try:
        await closable.close()
    except Exception:  # noqa: BLE001 - closing what may be broken already
        pass


async def _close_later(channel: AbstractChannel, delay: float) -> None:
    try:
        await asyncio.sleep(delay)
    finally:
        if not channel.is_closed:
            await _close_quietly(channel)


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
