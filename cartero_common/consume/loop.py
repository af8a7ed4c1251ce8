"""The one consume loop every consumer runs.

- Manual ack, only after the work is done **and** every message the outcome needs (retry copy,
  dead letter, `logs` event) was confirmed by the broker. Publishes are pipelined (publisher
  confirms arrive asynchronously), so one slow round trip does not cost one per message.
- Bounded prefetch; the handler gets one delivery, or a batch when the consumer asks for it.
- One long-lived connection with heartbeats; when it goes, reconnect with backoff. Deliveries
  not yet acked then come back from the broker; the consumers' dedupe makes that harmless.
- Graceful stop (`stop()`, SIGTERM, SIGINT): cancel the subscription, finish the work in hand,
  wait for its confirms and acks, give the rest back to the queue, close — within `grace` seconds.

This module holds the loop's settings and its reconnect cycle; one connection's life (consume,
settle, ack, stop) is `connection.BrokerConnection`, which gets the settings (`ConnectionConfig`) and
the stop control they share, never the loop itself.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

import pika.exceptions

from cartero_common.amqp.queue_type import CLASSIC, QueueType
from cartero_common.amqp.topology import RetryPolicy
from cartero_common.clock import Clock, system_clock
from cartero_common.consume.connection import BrokerConnection, ConnectionConfig, StopControl
from cartero_common.consume.outcomes import BatchHandler, Delivery, Done, Failure, Outcome
from cartero_common.wire import QUEUE_LOGS

__all__ = ["ConsumerLoop", "Delivery", "Done", "Failure", "Outcome"]

log = logging.getLogger(__name__)


@dataclass
class ConsumerLoop:
    url: str
    queue: str
    handler: BatchHandler
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    report_to: str | None = QUEUE_LOGS  # None: no events (consumer_logs consumes `logs` itself)
    # Further queues the handler's `Done.publishes` go to: declared (durable, no arguments) with
    # the rest, since a publish to a missing queue comes back unroutable and the loop reconnects.
    declares: tuple[str, ...] = ()
    prefetch: int = 50
    batch_size: int = 1
    heartbeat: int = 60
    max_backoff: float = 30.0
    grace: float = 30.0
    clock: Clock = system_clock
    timezone: str = "Europe/Madrid"
    name: str = "cartero-consumer"
    pause_before_ack: float = 0.0  # fault injection for the crash tests; 0 in production
    queue_type: QueueType = CLASSIC  # CARTERO_QUEUE_TYPE: every queue the loop declares

    def __post_init__(self) -> None:
        self.control = StopControl()

    @property
    def connected(self) -> threading.Event:
        """Set while a broker connection is consuming."""
        return self.control.connected

    @property
    def stop_requested_at(self) -> float | None:
        return self.control.stop_requested_at

    def stop(self, *_: object) -> None:
        """Ask the loop to stop; safe from a signal handler or another thread."""
        self.control.stop()

    @property
    def stopping(self) -> bool:
        return self.control.stopping

    def connection_config(self) -> ConnectionConfig:
        return ConnectionConfig(
            url=self.url,
            queue=self.queue,
            handler=self.handler,
            policy=self.policy,
            report_to=self.report_to,
            declares=self.declares,
            prefetch=self.prefetch,
            batch_size=self.batch_size,
            heartbeat=self.heartbeat,
            grace=self.grace,
            clock=self.clock,
            timezone=self.timezone,
            name=self.name,
            pause_before_ack=self.pause_before_ack,
            queue_type=self.queue_type,
        )

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping:
            connection = BrokerConnection(self.connection_config(), self.control)
            try:
                connection.run()
            except (pika.exceptions.AMQPError, OSError) as exc:
                connection.error = connection.error or exc
            self.connected.clear()
            if self.stopping:
                break
            if connection.consumed:
                backoff = 0.5
            log.warning(
                "broker connection lost; reconnecting",
                extra={"queue": self.queue, "error": repr(connection.error), "retry_in_s": backoff},
            )
            deadline = time.monotonic() + backoff
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)
            backoff = min(backoff * 2, self.max_backoff)
        log.info("consumer stopped", extra={"queue": self.queue})
