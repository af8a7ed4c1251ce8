"""The queues' type, a deployment choice (`CARTERO_QUEUE_TYPE`, docs/scaling-out.md).

`classic` (the default) keeps every declare exactly as it was: the shared queues durable and
argument-free, as the PHP services declare them, on any RabbitMQ version. `quorum` makes every
queue of ours a quorum queue, and our clients say so on every declare (`x-queue-type`): a declare
without it would ask for the vhost default, which a broker before 3.13.4 takes to be classic and
answers with 406 PRECONDITION_FAILED on an existing quorum queue.

No pika and no aio-pika here: the blocking helpers, the asyncio publisher and the settings all
read it.
"""

from __future__ import annotations

from typing import Any, Literal

QueueType = Literal["classic", "quorum"]
CLASSIC: QueueType = "classic"
QUORUM: QueueType = "quorum"


def declare_arguments(queue_type: QueueType) -> dict[str, Any]:
    """What a non-passive declare of one of our queues carries besides its own arguments: nothing
    for classic (argument-free, the PHP contract), the type for quorum."""
    return {"x-queue-type": QUORUM} if queue_type == QUORUM else {}


def retry_arguments(queue_type: QueueType, *, ttl_ms: int, back_to: str) -> dict[str, Any]:
    """A retry queue's arguments: its TTL, then dead-lettering back to `back_to` through the
    default exchange. Quorum dead-letters at most once unless asked otherwise: a message expiring
    while the queue's leader changes could be dropped, so quorum retry queues dead-letter at least
    once, which RabbitMQ (3.10+) does only with `reject-publish` overflow (no length limit is set,
    so nothing is ever rejected).
    Ref: https://www.rabbitmq.com/docs/quorum-queues#dead-lettering"""
    arguments: dict[str, Any] = {
        "x-message-ttl": ttl_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": back_to,
    }
    if queue_type == QUORUM:
        arguments.update(
            {"x-queue-type": QUORUM, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        )
    return arguments
