"""One broker connection's life for the consume loop: connect, declare, consume, settle, ack,
stop.

Built on pika's `SelectConnection`: handlers run on the I/O loop's thread between reads, one
batch per turn of the loop, so heartbeats keep flowing. A handler must therefore bound its own
blocking calls (provider timeouts) well below the heartbeat timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method

from cartero_common.amqp.blocking import connect, connection_parameters
from cartero_common.amqp.queue_type import CLASSIC, QueueType
from cartero_common.amqp.topology import RetryPolicy, declare_topology
from cartero_common.clock import Clock
from cartero_common.consume.acks import AckTracker, Ticket
from cartero_common.consume.outcomes import BatchHandler, Delivery, Done, Failure, Outcome, Publish, TransientFailure
from cartero_common.consume.settle import settle
from cartero_common.metrics import ConsumerMetrics
from cartero_common.wire import Settled

log = logging.getLogger("cartero_common.consumer")

WATCH_SECONDS = 0.1  # how often the I/O loop looks for a stop request


class CorkedConnection(SelectConnection):  # type: ignore[misc]  # pika ships no type hints
    """A `SelectConnection` whose output can be held while a batch is settled, then written in
    one piece. pika writes every frame as its own chunk (three per published message); on a
    busy host that socket write was the largest single cost per message."""

    _cork: list[bytes] | None = None

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._cork is not None:
            self._cork.append(data)
        else:
            super()._adapter_emit_data(data)

    @contextmanager
    def corked(self) -> Iterator[None]:
        self._cork = []
        try:
            yield
        finally:
            held, self._cork = self._cork, None
            if held and not self.is_closed:
                super()._adapter_emit_data(b"".join(held))


@dataclass(frozen=True)
class ConnectionConfig:
    """What a broker connection needs to know: the loop's settings, nothing of the loop itself."""

    url: str  # the whole AMQP_URL list; each connection is to one node of it (`BrokerConnection.node`)
    queue: str
    handler: BatchHandler
    policy: RetryPolicy
    report_to: str | None
    declares: tuple[str, ...]
    prefetch: int
    batch_size: int
    heartbeat: int
    grace: float
    clock: Clock
    timezone: str
    name: str
    pause_before_ack: float
    queue_type: QueueType = CLASSIC


class StopControl:
    """Shared by the loop and its connections: a stop request, and whether one is consuming.

    `stop()` only sets a value, so it is safe from a signal handler or another thread; the I/O
    loop looks at it every `WATCH_SECONDS`."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.stop_requested_at: float | None = None

    def stop(self) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()

    @property
    def stopping(self) -> bool:
        return self.stop_requested_at is not None


class BrokerConnection:
    """One connection's life, to one node: connect, declare, consume, settle, until it closes."""

    def __init__(self, config: ConnectionConfig, control: StopControl, *, node: str | None = None) -> None:
        self.config = config
        self.node = node or config.url
        self.control = control
        self.connection: CorkedConnection | None = None
        self.channel: Channel | None = None
        self.consumer_tag: str | None = None
        self.pending: deque[Delivery] = deque()
        self.acks = AckTracker()
        self.metrics = ConsumerMetrics(config.queue)
        self.held_acks = 0
        self.draining = False
        self.closing = False
        self.consumed = False
        self.error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        config = self.config
        setup = connect(self.node, heartbeat=config.heartbeat, name=f"{config.name} (setup)")
        try:
            also = ((config.report_to,) if config.report_to else ()) + config.declares
            declare_topology(setup.channel(), config.queue, config.policy, also=also, queue_type=config.queue_type)
        finally:
            setup.close()
        params = connection_parameters(self.node, heartbeat=config.heartbeat, name=config.name)
        self.connection = CorkedConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self.connection.ioloop.call_later(WATCH_SECONDS, self._watch)
        try:
            self.connection.ioloop.start()
        except Exception as exc:
            # A bug in a callback: close this connection properly (its unacked deliveries go
            # back to the queue) and let the loop start over.
            log.exception("consume loop failed; reconnecting", extra={"queue": config.queue})
            self.error = exc
            if self.connection.is_open:
                self.closing = True
                self.connection.close()
                self.connection.ioloop.start()  # until `_on_closed` stops it

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _: Any, error: BaseException | str) -> None:
        self.error = error if isinstance(error, BaseException) else pika.exceptions.AMQPConnectionError(error)
        self._ioloop_stop()

    def _on_closed(self, _: Any, reason: BaseException) -> None:
        self.control.connected.clear()
        if not self.closing:
            self.error = reason
        self._ioloop_stop()

    def _ioloop_stop(self) -> None:
        if self.connection is not None:
            self.connection.ioloop.stop()

    def _on_channel(self, channel: Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.add_on_cancel_callback(self._on_cancelled)
        channel.confirm_delivery(self._on_confirm, callback=lambda _: self._qos())

    def _qos(self) -> None:
        assert self.channel is not None
        # Per consumer (pika's `global_qos=False`, the default, said out loud): quorum queues
        # refuse a global prefetch, and one channel holds one consumer anyway.
        self.channel.basic_qos(
            prefetch_count=self.config.prefetch, global_qos=False, callback=lambda _: self._consume()
        )

    def _consume(self) -> None:
        assert self.channel is not None
        if self.control.stopping:
            self._close()
            return
        self.consumer_tag = self.channel.basic_consume(
            self.config.queue, self._on_message, auto_ack=False, callback=lambda _: self._consuming()
        )

    def _consuming(self) -> None:
        self.consumed = True
        self.control.connected.set()
        log.info("consuming", extra={"queue": self.config.queue, "prefetch": self.config.prefetch})

    def _on_channel_closed(self, _: Channel, reason: BaseException) -> None:
        if not self.closing:
            log.warning("channel closed by the broker", extra={"queue": self.config.queue, "error": repr(reason)})
            self.error = reason
        self._close()

    def _on_cancelled(self, _: Any) -> None:
        # The broker cancelled our subscription (the queue was deleted): start over.
        self.consumer_tag = None
        self.error = pika.exceptions.AMQPError(f"the broker cancelled the subscription to {self.config.queue!r}")
        self._close()

    def _on_return(self, _: Channel, method: Any, properties: Any, body: bytes) -> None:
        # Unroutable: a queue we declared is gone. Start over (and redeclare) rather than ack
        # work whose retry copy, dead letter or event was dropped.
        log.error("broker returned a message as unroutable; reconnecting", extra={"routing_key": method.routing_key})
        self.error = pika.exceptions.AMQPError(f"unroutable message to {method.routing_key!r}")
        self._close()

    def _close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.control.connected.clear()
        if self.connection is not None and not (self.connection.is_closing or self.connection.is_closed):
            self.connection.close()
        else:
            self._ioloop_stop()

    # --- stopping --------------------------------------------------------------------------
    def _watch(self) -> None:
        if self.closing or self.connection is None:
            return
        requested = self.control.stop_requested_at
        if requested is not None:
            if not self.draining:
                self._begin_stop()
            if time.monotonic() - requested >= self.config.grace:
                log.warning(
                    "grace period over; closing with work unacknowledged (it returns to the queue)",
                    extra={"queue": self.config.queue, "unconfirmed": self.acks.unconfirmed},
                )
                self._close()
                return
        self.connection.ioloop.call_later(WATCH_SECONDS, self._watch)

    def _begin_stop(self) -> None:
        if self.channel is not None and self.channel.is_open:
            if self.consumer_tag is not None:
                self.channel.basic_cancel(self.consumer_tag)
                self.consumer_tag = None
            returned = len(self.pending)
            for delivery in self.pending:
                self.channel.basic_nack(delivery.delivery_tag, multiple=False, requeue=True)
                self.acks.forget(delivery.delivery_tag)
            if returned:
                log.info("stopping: prefetched messages returned to the queue", extra={"returned": returned})
        self.pending.clear()
        self._close_when_idle()

    def _close_when_idle(self) -> None:
        if self.control.stopping and not self.acks.unconfirmed and not self.held_acks and not self.pending:
            self._close()

    # --- consuming -------------------------------------------------------------------------
    def _on_message(self, _: Channel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        delivery = Delivery(self.config.queue, body, properties, bool(method.redelivered), method.delivery_tag)
        if self.control.stopping:
            assert self.channel is not None
            self.channel.basic_nack(delivery.delivery_tag, multiple=False, requeue=True)
            return
        self.pending.append(delivery)
        self.acks.opened(delivery.delivery_tag)
        if not self.draining and self.connection is not None:
            self.draining = True
            self.connection.ioloop.call_later(0, self._drain)

    def _drain(self) -> None:
        """Handle one batch of what is in hand, then give the I/O loop a turn before the next.

        pika only queues what a batch publishes and acks; the socket is written when the loop
        polls. Handling batch after batch in one go held the first batch's events back until
        the last was done, and the acks behind their confirms with them: the broker's window
        (prefetch) stayed full of work already finished. A turn per batch sends each batch as it
        is done and takes in the confirms and deliveries that arrived meanwhile.
        """
        self.draining = False
        if not self.pending or self.closing:
            return
        if self.control.stopping:
            self._begin_stop()
            return
        size = min(self.config.batch_size, len(self.pending))
        self._process([self.pending.popleft() for _ in range(size)])
        if self.pending and not self.closing:
            self.draining = True
            assert self.connection is not None
            self.connection.ioloop.call_later(0, self._drain)

    def _process(self, batch: list[Delivery]) -> None:
        config = self.config
        started = time.perf_counter()
        try:
            outcomes: list[Outcome] = list(config.handler(batch))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(batch)} deliveries")
        except Exception as exc:  # noqa: BLE001 - a bug or an outage must not kill the consumer
            log.exception("handler failed; retrying the batch", extra={"queue": config.queue, "size": len(batch)})
            outcomes = [TransientFailure(f"unexpected error: {exc!r}") for _ in batch]
        per_message = (time.perf_counter() - started) / len(batch)
        now = config.clock()
        assert self.connection is not None
        with self.connection.corked():
            for delivery, outcome in zip(batch, outcomes, strict=True):
                settled = settle(
                    delivery,
                    outcome,
                    policy=config.policy,
                    report_to=config.report_to,
                    now=now,
                    timezone=config.timezone,
                )
                self.metrics.settled(settled.outcome, per_message)
                _log_outcome(delivery, outcome, settled.outcome, settled.reason)
                self._submit(delivery, settled.publishes)

    def _submit(self, delivery: Delivery, publishes: tuple[Publish, ...]) -> None:
        if self.channel is None or not self.channel.is_open:
            return  # the connection is going: the broker gives this delivery back
        ticket = Ticket(delivery.delivery_tag, remaining=len(publishes))
        for publish in publishes:
            self.channel.basic_publish("", publish.queue, publish.body, publish.properties, mandatory=True)
            self.acks.published(ticket)
        if not publishes:
            self._finish(ticket)
            self._send_acks()

    def _on_confirm(self, frame: Method[Any]) -> None:
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        for ticket in self.acks.confirmed(method.delivery_tag, multiple=method.multiple, ok=ok):
            self._finish(ticket)
        self._send_acks()
        self._close_when_idle()

    def _finish(self, ticket: Ticket) -> None:
        if ticket.failed:
            if self.channel is not None and self.channel.is_open:
                log.warning(
                    "broker refused a publish; message returned to the queue", extra={"tag": ticket.delivery_tag}
                )
                self.channel.basic_nack(ticket.delivery_tag, multiple=False, requeue=True)
            self.acks.forget(ticket.delivery_tag)
            # Start over on a fresh connection rather than go on publishing on this channel: on
            # RabbitMQ 3.10 a channel whose first publish to a quorum queue reached it while the
            # queue's leader was down goes on refusing every publish after a new leader took over
            # (tests/cluster). The others in flight are settled by the broker returning them.
            self.error = pika.exceptions.AMQPError("the broker refused a publish (basic.nack)")
            self._close()
        elif self.config.pause_before_ack > 0:
            self.held_acks += 1
            assert self.connection is not None
            self.connection.ioloop.call_later(self.config.pause_before_ack, lambda: self._release(ticket))
        else:
            self.acks.finished(ticket.delivery_tag)

    def _release(self, ticket: Ticket) -> None:
        self.held_acks -= 1
        self.acks.finished(ticket.delivery_tag)
        self._send_acks()
        self._close_when_idle()

    def _send_acks(self) -> None:
        upto = self.acks.ackable()
        if upto is not None and self.channel is not None and self.channel.is_open:
            # If the channel is gone the broker gives these back; the dedupe ledger absorbs them.
            self.channel.basic_ack(upto, multiple=True)


def _log_outcome(delivery: Delivery, outcome: Done | Failure, label: str, reason: str | None) -> None:
    message_id = (outcome.message or {}).get("id")
    extra = {"id": message_id or delivery.message_id, "queue": delivery.queue, "outcome": label}
    if label == Settled.DUPLICATE:
        log.info("already delivered before; not sent again", extra=extra)
        return
    if reason is None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("message settled", extra=extra)
        return
    log.warning("message not delivered", extra={**extra, "reason": reason, "attempt": delivery.attempt})
