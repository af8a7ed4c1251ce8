"""The one consume loop every consumer runs.

- Manual ack, only after the work is done **and** every message the outcome needs (retry copy,
  dead letter, `logs` event) was confirmed by the broker. Publishes are pipelined (publisher
  confirms arrive asynchronously), so one slow round trip does not cost one per message.
- Bounded prefetch; the handler gets one delivery, or a batch when the consumer asks for it.
- One long-lived connection with heartbeats; when it goes, reconnect with backoff. Deliveries
  not yet acked then come back from the broker; the consumers' dedupe makes that harmless.
- Graceful stop (`stop()`, SIGTERM, SIGINT): cancel the subscription, finish the work in hand,
  wait for its confirms and acks, give the rest back to the queue, close — within `grace` seconds.

Built on pika's `SelectConnection`: handlers run on the I/O loop's thread between reads, in
slices of at most `SLICE_SECONDS`, so heartbeats keep flowing. A handler must therefore bound
its own blocking calls (provider timeouts) well below the heartbeat timeout.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method

from cartero_common.amqp import connect, connection_parameters
from cartero_common.clock import Clock, system_clock
from cartero_common.metrics import CONSUMER_DEAD_LETTERS, CONSUMER_MESSAGES, CONSUMER_PROCESSING, CONSUMER_RETRIES
from cartero_common.outcomes import BatchHandler, Delivery, Done, Failure, Outcome, TransientFailure
from cartero_common.schemas import QUEUE_LOGS
from cartero_common.settle import Publish, settle
from cartero_common.topology import RetryPolicy, declare_topology

log = logging.getLogger(__name__)

SLICE_SECONDS = 0.2  # longest run of handler work before the I/O loop gets a turn
WATCH_SECONDS = 0.1  # how often the I/O loop looks for a stop request


@dataclass
class _Ticket:
    """A delivery waiting for its publishes to be confirmed before it is acked."""

    delivery_tag: int
    remaining: int
    failed: bool = False


@dataclass
class ConsumerLoop:
    url: str
    queue: str
    handler: BatchHandler
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    report_to: str | None = QUEUE_LOGS  # None: no events (consumer_logs consumes `logs` itself)
    prefetch: int = 50
    batch_size: int = 1
    heartbeat: int = 60
    max_backoff: float = 30.0
    grace: float = 30.0
    clock: Clock = system_clock
    timezone: str = "Europe/Madrid"
    name: str = "cartero-consumer"
    pause_before_ack: float = 0.0  # fault injection for the crash tests; 0 in production

    def __post_init__(self) -> None:
        self.connected = threading.Event()
        self.stop_requested_at: float | None = None

    def stop(self, *_: object) -> None:
        """Ask the loop to stop; safe from a signal handler or another thread (it only sets a
        value the I/O loop looks at every `WATCH_SECONDS`)."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()

    @property
    def stopping(self) -> bool:
        return self.stop_requested_at is not None

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping:
            session = _Session(self)
            try:
                session.run()
            except (pika.exceptions.AMQPError, OSError) as exc:
                session.error = session.error or exc
            self.connected.clear()
            if self.stopping:
                break
            if session.consumed:
                backoff = 0.5
            log.warning(
                "broker connection lost; reconnecting",
                extra={"queue": self.queue, "error": repr(session.error), "retry_in_s": backoff},
            )
            deadline = time.monotonic() + backoff
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)
            backoff = min(backoff * 2, self.max_backoff)
        log.info("consumer stopped", extra={"queue": self.queue})


class _Session:
    """One connection's life: connect, declare, consume, settle, until it closes."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop
        self.connection: SelectConnection | None = None
        self.channel: Channel | None = None
        self.consumer_tag: str | None = None
        self.pending: deque[Delivery] = deque()
        self.unconfirmed: dict[int, _Ticket] = {}
        self.publish_seq = 0
        self.held_acks = 0
        self.draining = False
        self.closing = False
        self.consumed = False
        self.error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        loop = self.loop
        setup = connect(loop.url, heartbeat=loop.heartbeat, name=f"{loop.name} (setup)")
        try:
            also = (loop.report_to,) if loop.report_to else ()
            declare_topology(setup.channel(), loop.queue, loop.policy, also=also)
        finally:
            setup.close()
        params = connection_parameters(loop.url, heartbeat=loop.heartbeat, name=loop.name)
        self.connection = SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self.connection.ioloop.call_later(WATCH_SECONDS, self._watch)
        self.connection.ioloop.start()

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _: Any, error: BaseException | str) -> None:
        self.error = error if isinstance(error, BaseException) else pika.exceptions.AMQPConnectionError(error)
        self._ioloop_stop()

    def _on_closed(self, _: Any, reason: BaseException) -> None:
        self.loop.connected.clear()
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
        self.channel.basic_qos(prefetch_count=self.loop.prefetch, callback=lambda _: self._consume())

    def _consume(self) -> None:
        assert self.channel is not None
        if self.loop.stopping:
            self._close()
            return
        self.consumer_tag = self.channel.basic_consume(
            self.loop.queue, self._on_message, auto_ack=False, callback=lambda _: self._consuming()
        )

    def _consuming(self) -> None:
        self.consumed = True
        self.loop.connected.set()
        log.info("consuming", extra={"queue": self.loop.queue, "prefetch": self.loop.prefetch})

    def _on_channel_closed(self, _: Channel, reason: BaseException) -> None:
        if not self.closing:
            log.warning("channel closed by the broker", extra={"queue": self.loop.queue, "error": repr(reason)})
            self.error = reason
        self._close()

    def _on_cancelled(self, _: Any) -> None:
        # The broker cancelled our subscription (the queue was deleted): start over.
        self.consumer_tag = None
        self.error = pika.exceptions.AMQPError(f"the broker cancelled the subscription to {self.loop.queue!r}")
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
        self.loop.connected.clear()
        if self.connection is not None and not (self.connection.is_closing or self.connection.is_closed):
            self.connection.close()
        else:
            self._ioloop_stop()

    # --- stopping --------------------------------------------------------------------------
    def _watch(self) -> None:
        if self.closing or self.connection is None:
            return
        requested = self.loop.stop_requested_at
        if requested is not None:
            if not self.draining:
                self._begin_stop()
            if time.monotonic() - requested >= self.loop.grace:
                log.warning(
                    "grace period over; closing with work unacknowledged (it returns to the queue)",
                    extra={"queue": self.loop.queue, "unconfirmed": len(self.unconfirmed)},
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
            if returned:
                log.info("stopping: prefetched messages returned to the queue", extra={"returned": returned})
        self.pending.clear()
        self._close_when_idle()

    def _close_when_idle(self) -> None:
        if self.loop.stopping and not self.unconfirmed and not self.held_acks and not self.pending:
            self._close()

    # --- consuming -------------------------------------------------------------------------
    def _on_message(self, _: Channel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        delivery = Delivery(self.loop.queue, body, properties, bool(method.redelivered), method.delivery_tag)
        if self.loop.stopping:
            assert self.channel is not None
            self.channel.basic_nack(delivery.delivery_tag, multiple=False, requeue=True)
            return
        self.pending.append(delivery)
        if not self.draining and self.connection is not None:
            self.draining = True
            self.connection.ioloop.call_later(0, self._drain)

    def _drain(self) -> None:
        """Handle what is in hand, a batch at a time, for at most `SLICE_SECONDS`."""
        self.draining = False
        started = time.monotonic()
        while self.pending and not self.closing:
            if self.loop.stopping:
                self._begin_stop()
                return
            size = min(self.loop.batch_size, len(self.pending))
            self._process([self.pending.popleft() for _ in range(size)])
            if self.pending and time.monotonic() - started > SLICE_SECONDS:
                self.draining = True
                assert self.connection is not None
                self.connection.ioloop.call_later(0, self._drain)
                return

    def _process(self, batch: list[Delivery]) -> None:
        loop = self.loop
        started = time.perf_counter()
        try:
            outcomes: list[Outcome] = list(loop.handler(batch))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(batch)} deliveries")
        except Exception as exc:  # noqa: BLE001 - a bug or an outage must not kill the consumer
            log.exception("handler failed; retrying the batch", extra={"queue": loop.queue, "size": len(batch)})
            outcomes = [TransientFailure(f"unexpected error: {exc!r}") for _ in batch]
        per_message = (time.perf_counter() - started) / len(batch)
        now = loop.clock()
        for delivery, outcome in zip(batch, outcomes, strict=True):
            CONSUMER_PROCESSING.labels(loop.queue).observe(per_message)
            settled = settle(
                delivery, outcome, policy=loop.policy, report_to=loop.report_to, now=now, timezone=loop.timezone
            )
            CONSUMER_MESSAGES.labels(loop.queue, settled.outcome).inc()
            _log_outcome(delivery, outcome, settled.outcome, settled.reason)
            if settled.outcome == "reintento":
                CONSUMER_RETRIES.labels(loop.queue).inc()
            elif settled.outcome in ("fallido", "rechazado"):
                CONSUMER_DEAD_LETTERS.labels(loop.queue, settled.outcome).inc()
            self._submit(delivery, settled.publishes)

    def _submit(self, delivery: Delivery, publishes: tuple[Publish, ...]) -> None:
        assert self.channel is not None
        ticket = _Ticket(delivery.delivery_tag, remaining=len(publishes))
        for publish in publishes:
            self.channel.basic_publish("", publish.queue, publish.body, publish.properties, mandatory=True)
            self.publish_seq += 1
            self.unconfirmed[self.publish_seq] = ticket
        if not publishes:
            self._ack(ticket)

    def _on_confirm(self, frame: Method[Any]) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            seqs = []
            for seq in self.unconfirmed:  # insertion order is publish order
                if seq > method.delivery_tag:
                    break
                seqs.append(seq)
        else:
            seqs = [method.delivery_tag]
        for seq in seqs:
            ticket = self.unconfirmed.pop(seq, None)
            if ticket is None:
                continue
            ticket.failed = ticket.failed or not acked
            ticket.remaining -= 1
            if ticket.remaining == 0:
                self._ack(ticket)
        self._close_when_idle()

    def _ack(self, ticket: _Ticket) -> None:
        if self.loop.pause_before_ack > 0 and not ticket.failed:
            self.held_acks += 1
            assert self.connection is not None
            self.connection.ioloop.call_later(self.loop.pause_before_ack, lambda: self._release(ticket))
            return
        self._settle_ack(ticket)

    def _release(self, ticket: _Ticket) -> None:
        self.held_acks -= 1
        self._settle_ack(ticket)
        self._close_when_idle()

    def _settle_ack(self, ticket: _Ticket) -> None:
        if self.channel is None or not self.channel.is_open:
            return  # the broker gives the delivery back; dedupe makes the redelivery harmless
        if ticket.failed:
            log.warning("broker refused a publish; message returned to the queue", extra={"tag": ticket.delivery_tag})
            self.channel.basic_nack(ticket.delivery_tag, multiple=False, requeue=True)
        else:
            self.channel.basic_ack(ticket.delivery_tag)


def _log_outcome(delivery: Delivery, outcome: Done | Failure, label: str, reason: str | None) -> None:
    message_id = (outcome.message or {}).get("id")
    extra = {"id": message_id or delivery.message_id, "queue": delivery.queue, "outcome": label}
    if label == "duplicado":
        log.info("already delivered before; not sent again", extra=extra)
        return
    if reason is None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("message settled", extra=extra)
        return
    log.warning("message not delivered", extra={**extra, "reason": reason, "attempt": delivery.attempt})
