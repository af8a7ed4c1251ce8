"""The one consume loop every consumer runs.

- Manual ack, only after the work is done **and** every message the outcome needs (retry copy,
  dead letter, `logs` event) was confirmed by the broker. Publishes are pipelined (publisher
  confirms arrive asynchronously), so one slow round trip does not cost one per message.
- Bounded prefetch; the handler gets one delivery, or a batch when the consumer asks for it.
- One long-lived connection with heartbeats to one node of `url` (an `AMQP_URL` list: the
  first one tried is random, `urls.failover_order`); when it goes, the next node, then the next,
  with at most `max_backoff` seconds between rounds of them all, so a node that comes back (or
  another one) is consuming again within a second. Deliveries not yet acked then come back from
  the broker; the consumers' dedupe makes that harmless.
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
from cartero_common.amqp.urls import failover_order, node_label, split_urls
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
    # Between rounds of every node: from `min_backoff`, doubling, up to this. A node that comes
    # back is found within this much (plus a connect); the failover issue asks for 1 s.
    min_backoff: float = 0.1
    max_backoff: float = 0.5
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
        nodes = failover_order(split_urls(self.url))
        turn = 0  # connections tried; nodes[turn % len(nodes)] is the next
        failed = 0  # attempts in a row that never consumed
        backoff = self.min_backoff
        while not self.stopping:
            node = nodes[turn % len(nodes)]
            connection = BrokerConnection(self.connection_config(), self.control, node=node)
            try:
                connection.run()
            except (pika.exceptions.AMQPError, OSError) as exc:
                connection.error = connection.error or exc
            self.connected.clear()
            if self.stopping:
                break
            turn += 1
            # A lost connection goes on to the next node after a short pause (so one that keeps
            # failing once open cannot spin); a refused one straight away, pausing only after a
            # whole round of nodes refused, longer each round up to `max_backoff`.
            if connection.consumed:
                failed, backoff, wait = 0, self.min_backoff, self.min_backoff
            else:
                failed += 1
                wait = 0.0
                if failed % len(nodes) == 0:
                    wait, backoff = backoff, min(backoff * 2, self.max_backoff)
            # Every loss and the first round of refusals are logged; a long outage then once per
            # twenty rounds, not twice a second.
            if connection.consumed or failed <= len(nodes) or failed % (20 * len(nodes)) == 0:
                log.warning(
                    "broker connection lost; reconnecting" if connection.consumed else "broker node refused; trying on",
                    extra={
                        "queue": self.queue,
                        "node": node_label(node),
                        "error": repr(connection.error),
                        "next_node": node_label(nodes[turn % len(nodes)]),
                        "retry_in_s": wait,
                        "attempts": failed,
                    },
                )
            deadline = time.monotonic() + wait
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.02)
        log.info("consumer stopped", extra={"queue": self.queue})
