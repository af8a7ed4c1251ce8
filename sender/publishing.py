"""From a validated request to two confirmed messages: the work and its `enviado` event."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from cartero_common.amqp import encode
from cartero_common.amqp.publisher import AsyncPublisher, BrokerUnavailable, PublishUnconfirmed
from cartero_common.clock import fecha
from cartero_common.wire import QUEUE_LOGS, sent_event
from sender.metrics import EVENT_PUBLISH_FAILURES, PUBLISH_SECONDS

log = logging.getLogger(__name__)
# A message confirmed without its event: the event is tried again this many times, this far apart.
EVENT_RETRIES = 3
EVENT_RETRY_DELAY_S = 1.0


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
    background: set[asyncio.Task[None]],
) -> None:
    """Publish the message and its log event; return once the broker confirmed the message.

    Both go out at once (two confirms in flight, one round trip). The message decides the answer:
    `BrokerUnavailable` or `PublishUnconfirmed` from its publish are raised as they are. A
    confirmed message whose event was not confirmed is queued all the same: the event is counted
    as missing and tried again in the background (a task kept in `background`), never a reason to
    refund a message the broker holds.
    """
    message_id = message["id"]
    event = encode(sent_event(message, queue=queue, extra=event_extra))
    started = time.perf_counter()
    # The event's frames go out first on the shared channel, so `enviado` is on `logs` before any
    # consumer can take the message and report `consumido`: the message log keeps its order.
    event_result, message_result = await asyncio.gather(
        publisher.publish(QUEUE_LOGS, event, message_id=message_id, now=now),
        publisher.publish(queue, encode(message), message_id=message_id, now=now),
        return_exceptions=True,
    )
    PUBLISH_SECONDS.observe(time.perf_counter() - started)
    if isinstance(message_result, BrokerUnavailable | PublishUnconfirmed):
        raise message_result
    if isinstance(message_result, BaseException):
        # Nothing says whether the frames went out: the outcome is unknown, not a refusal.
        raise PublishUnconfirmed.never_answered(repr(message_result)) from message_result
    if isinstance(event_result, BaseException):
        EVENT_PUBLISH_FAILURES.inc()
        log.warning("event not confirmed; trying again", extra={"id": message_id, "error": str(event_result)})
        keep_running(background, republish_event(publisher, event, message_id=message_id, now=now))


def keep_running(background: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
    """Run `work` after the answer, held in `background` until it ends (so it is neither
    collected early nor forgotten at shutdown)."""
    task = asyncio.get_running_loop().create_task(work)
    background.add(task)
    task.add_done_callback(background.discard)


async def republish_event(publisher: AsyncPublisher, event: bytes, *, message_id: str, now: datetime) -> None:
    """The `enviado` event of a queued message, tried again a few times. Consumers of `logs`
    dedupe nothing, so a copy the broker took unconfirmed may show twice in the message log."""
    for _ in range(EVENT_RETRIES):
        await asyncio.sleep(EVENT_RETRY_DELAY_S)
        try:
            await publisher.publish(QUEUE_LOGS, event, message_id=message_id, now=now)
        except (BrokerUnavailable, PublishUnconfirmed) as exc:
            log.warning("event still not confirmed", extra={"id": message_id, "error": str(exc)})
            continue
        log.info("event confirmed on a later try", extra={"id": message_id})
        return
    log.error("event given up: the message is queued, its enviado is missing", extra={"id": message_id})
