"""Where the queue depth comes from: RabbitMQ's Prometheus metrics, or the broker itself over AMQP.

`prometheus` sees ready + unacknowledged (`rabbitmq_queue_messages`, the plugin's total depth).
`amqp` sees only what a passive declare returns: the ready count and the number of consumers;
messages delivered but not yet acked are invisible to it (docs/monitor.md, "Depth sources").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import httpx
import pika
import pika.exceptions

from cartero_common.amqp import connect

log = logging.getLogger(__name__)


class SourceError(Exception):
    """The depth could not be read this time; the monitor holds its count."""


@dataclass(frozen=True)
class Depth:
    ready: int
    unacked: int | None  # None: this source cannot see it
    consumers: int | None

    @property
    def messages(self) -> int:
        """What the scaling decision counts: ready plus unacknowledged, as far as it is known."""
        return self.ready + (self.unacked or 0)


class DepthSource(Protocol):
    def read(self) -> Depth: ...

    def close(self) -> None: ...


class AmqpDepth:
    """A passive `queue.declare` on one long-lived connection, reopened when it breaks."""

    def __init__(self, url: str, queue: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.queue = queue
        self.timeout = timeout
        self._connection: pika.BlockingConnection | None = None

    def read(self) -> Depth:
        # An idle connection may have been dropped since the last tick: one fresh retry.
        for attempt in (1, 2):
            try:
                return self._declare()
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    raise SourceError(f"queue {self.queue!r} does not exist (yet)") from exc
                raise SourceError(f"broker refused the passive declare: {exc}") from exc
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise SourceError(f"broker unreachable: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _declare(self) -> Depth:
        if self._connection is None or not self._connection.is_open:
            self._connection = connect(self.url, heartbeat=0, timeout=self.timeout)
        channel = self._connection.channel()
        try:
            ok = channel.queue_declare(self.queue, passive=True).method
        finally:
            if channel.is_open:
                channel.close()
        return Depth(ready=int(ok.message_count), unacked=None, consumers=int(ok.consumer_count))

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._connection = None


TOTAL = "rabbitmq_queue_messages"
READY = "rabbitmq_queue_messages_ready"


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal for a label value."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class PrometheusDepth:
    """`rabbitmq_queue_messages` (ready + unacked) for one queue in one vhost, from Prometheus.

    The metric comes from the RabbitMQ plugin's per-object endpoint (`/metrics/per-object`, or
    `prometheus.return_per_object_metrics = true`); the aggregated `/metrics` has no queue label.
    """

    def __init__(self, url: str, queue: str, vhost: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.queue = queue
        self.vhost = vhost
        self.timeout = timeout
        selector = f"queue={promql_string(queue)},vhost={promql_string(vhost)}"
        # One query for both numbers, so they come from the same instant; summed so that a
        # cluster (a series per node that reports the queue) gives one number.
        self.query = f'sum by (__name__) ({{__name__=~"{TOTAL}|{READY}",{selector}}})'

    def read(self) -> Depth:
        try:
            response = httpx.get(f"{self.url}/api/v1/query", params={"query": self.query}, timeout=self.timeout)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"Prometheus unreachable at {self.url}: {exc!r}") from exc
        if body.get("status") != "success":
            raise SourceError(f"Prometheus answered {body.get('errorType')}: {body.get('error')}")
        try:
            values = {s["metric"]["__name__"]: int(float(s["value"][1])) for s in body["data"]["result"]}
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise SourceError(f"unexpected answer from Prometheus: {exc!r}") from exc
        if TOTAL not in values:
            # No series: the queue does not exist, or RabbitMQ is not being scraped. Reading that
            # as 0 would scale everything down during a scrape outage.
            raise SourceError(f"Prometheus has no {TOTAL} for queue {self.queue!r} in vhost {self.vhost!r}")
        total = values[TOTAL]
        ready = min(values.get(READY, total), total)
        return Depth(ready=ready, unacked=total - ready, consumers=None)

    def close(self) -> None:
        pass
