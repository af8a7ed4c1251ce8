"""From a validated request to two confirmed messages: the work and its `enviado` event."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

from cartero_common.aio_amqp import AsyncPublisher, BrokerUnavailable
from cartero_common.amqp import encode
from cartero_common.clock import fecha
from cartero_common.schemas import QUEUE_LOGS, sent_event
from sender.metrics import PUBLISH_SECONDS


def new_message(fields: dict[str, Any], *, now: datetime, timezone: str) -> dict[str, Any]:
    """The queue message: a new uuid4 `id`, the request's fields, `fecha` in local time."""
    return {"id": str(uuid.uuid4()), **fields, "fecha": fecha(now, timezone)}


async def publish_with_event(
    publisher: AsyncPublisher,
    *,
    queue: str,
    message: dict[str, Any],
    now: datetime,
    event_extra: dict[str, Any] | None = None,
) -> None:
    """Publish the message and its log event; return only when the broker confirmed both.

    Both go out at once (two confirms in flight, one round trip). If either is not confirmed
    the caller answers 503; the client may retry with the same Idempotency-Key.
    """
    message_id = message["id"]
    event = sent_event(message, queue=queue, extra=event_extra)
    started = time.perf_counter()
    # The event's frames go out first on the shared channel, so `enviado` is on `logs` before any
    # consumer can take the message and report `consumido`: the message log keeps its order.
    results = await asyncio.gather(
        publisher.publish(QUEUE_LOGS, encode(event), message_id=message_id, now=now),
        publisher.publish(queue, encode(message), message_id=message_id, now=now),
        return_exceptions=True,
    )
    PUBLISH_SECONDS.observe(time.perf_counter() - started)
    for result in results:
        if isinstance(result, BaseException):
            if isinstance(result, BrokerUnavailable):
                raise result
            raise BrokerUnavailable(str(result) or type(result).__name__) from result
