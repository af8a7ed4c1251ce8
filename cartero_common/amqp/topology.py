"""Each consumer's own queues next to the shared one: `<q>.retry.<delay>` and `<q>.dlq`.

The shared queue stays durable with no arguments (docs/design.md §5) on a classic deployment; on a
quorum one every queue carries `x-queue-type` (`queue_type.py`). The retry queues are ours, so
they carry the arguments: a per-queue TTL and dead-lettering back to `<q>` through the default
exchange. One retry queue per delay, not one queue with per-message expiry: RabbitMQ expires
messages only from the head of a queue, so a 10-minute message would hold back a 5-second one
queued behind it.
Ref: https://www.rabbitmq.com/docs/ttl#per-message-ttl-caveats
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel

from cartero_common.amqp.blocking import declare_shared_queues
from cartero_common.amqp.queue_type import CLASSIC, QueueType, declare_arguments, retry_arguments

DEFAULT_DELAYS = (5.0, 30.0, 120.0, 600.0)


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` deliveries in all; the n-th retry waits `delays[n-1]` (the last delay repeats)."""

    max_attempts: int = 5
    delays: tuple[float, ...] = DEFAULT_DELAYS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not self.delays or any(d <= 0 for d in self.delays):
            raise ValueError("retry delays must be positive")

    def delay_after(self, attempt: int) -> float:
        """How long to wait before attempt `attempt + 1`."""
        return self.delays[min(attempt, len(self.delays)) - 1]

    def used_delays(self) -> tuple[float, ...]:
        return tuple(dict.fromkeys(self.delay_after(n) for n in range(1, self.max_attempts)))


def parse_delays(text: str) -> tuple[float, ...]:
    """`"5,30,120,600"` → seconds; also accepts `ms`, `s`, `m`, `h` suffixes (`"200ms,1s,2m,8h"`)."""
    delays = []
    for part in text.split(","):
        item = part.strip().lower()
        if not item:
            continue
        if item.endswith("ms"):
            delays.append(float(item[:-2]) / 1000)
        elif item.endswith("h"):
            delays.append(float(item[:-1]) * 3600)
        elif item.endswith("m"):
            delays.append(float(item[:-1]) * 60)
        else:
            delays.append(float(item.removesuffix("s")))
    if not delays or any(d <= 0 for d in delays):
        raise ValueError(f"retry delays must be positive numbers of seconds, got {text!r}")
    return tuple(delays)


def delay_label(seconds: float) -> str:
    ms = round(seconds * 1000)
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def retry_queue(queue: str, delay: float) -> str:
    return f"{queue}.retry.{delay_label(delay)}"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def declare_topology(
    channel: BlockingChannel,
    queue: str,
    policy: RetryPolicy,
    *,
    also: Iterable[str] = (),
    queue_type: QueueType = CLASSIC,
) -> None:
    """The shared queue (and `also`, e.g. `logs`) made sure of, argument-free under classic; our
    retry queues and DLQ declared (the consumer's role has `configure` on these, not on the
    shared queues), every one of them of `queue_type`."""
    channel = declare_shared_queues(channel, (queue, *also), queue_type=queue_type)
    for delay in policy.used_delays():
        channel.queue_declare(
            retry_queue(queue, delay),
            durable=True,
            arguments=retry_arguments(queue_type, ttl_ms=round(delay * 1000), back_to=queue),
        )
    channel.queue_declare(dead_letter_queue(queue), durable=True, arguments=declare_arguments(queue_type) or None)
