"""From a handler's outcome to what the loop publishes before it acks: the retry copy or the
dead letter, and the event on `logs`. Pure: no broker, no clock of its own, tested alone."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pika

from cartero_common.amqp.blocking import PERSISTENT, encode, message_properties
from cartero_common.amqp.topology import RetryPolicy, dead_letter_queue, retry_queue
from cartero_common.clock import fecha
from cartero_common.consume.outcomes import (
    ATTEMPT_HEADER,
    Delivery,
    Done,
    Failure,
    Publish,
    TransientFailure,
    Unreadable,
)
from cartero_common.wire import Settled, consumed_event, failed_event, rejected_event, retry_event

log = logging.getLogger(__name__)

REASON_HEADER = "x-cartero-reason"
OUTCOME_HEADER = "x-cartero-outcome"
ORIGIN_HEADER = "x-cartero-queue"
FAILED_AT_HEADER = "x-cartero-failed-at"
MAX_REASON = 500


@dataclass(frozen=True)
class Settlement:
    """`outcome` is the metrics label: consumido, duplicado, reintento, fallido or rechazado."""

    outcome: str
    publishes: tuple[Publish, ...]
    reason: str | None = None


def settle(
    delivery: Delivery,
    outcome: Done | Failure,
    *,
    policy: RetryPolicy,
    report_to: str | None,
    now: datetime,
    timezone: str,
) -> Settlement:
    if isinstance(outcome, Done):
        consumed_at = outcome.consumed_at or now
        events = list(outcome.publishes)
        if report_to and outcome.message is not None:
            # A duplicate reports its first consumption time and provider, so the event is byte
            # for byte the one published the first time and the message log keeps one of them.
            first = _fecha(int(consumed_at.timestamp()), timezone)
            extra = {"proveedor": outcome.provider} if outcome.provider else None
            event = consumed_event(dict(outcome.message), queue=delivery.queue, fecha_consumo=first, extra=extra)
            events.append(_event(report_to, event, delivery, now))
        return Settlement(Settled.DUPLICATE if outcome.duplicate else Settled.CONSUMED, tuple(events))

    when = _fecha(int(now.timestamp()), timezone)
    reason = outcome.reason[:MAX_REASON]
    message = dict(outcome.message) if outcome.message is not None else {"id": delivery.message_id}
    attempt = delivery.attempt
    dlq = dead_letter_queue(delivery.queue)
    if isinstance(outcome, TransientFailure) and attempt < policy.max_attempts:
        delay = policy.delay_after(attempt)
        copy = _copy(delivery, retry_queue(delivery.queue, delay), {ATTEMPT_HEADER: attempt + 1})
        publishes = [copy]
        if report_to:
            event = retry_event(
                message,
                queue=delivery.queue,
                fecha_consumo=when,
                intento=attempt,
                motivo=reason,
                espera_s=delay,
                proximo_intento=next_try(now, delay, timezone),
            )
            publishes.append(_event(report_to, event, delivery, now))
        return Settlement(Settled.RETRYING, tuple(publishes), reason)

    if isinstance(outcome, TransientFailure):
        reason = f"{reason} (gave up after {attempt} attempts)"
    dead = _copy(
        delivery,
        dlq,
        {
            REASON_HEADER: reason,
            OUTCOME_HEADER: outcome.outcome,
            ORIGIN_HEADER: delivery.queue,
            ATTEMPT_HEADER: attempt,
            FAILED_AT_HEADER: now.astimezone(UTC).isoformat(),
        },
    )
    publishes = [dead]
    if report_to:
        if isinstance(outcome, Unreadable):
            event = rejected_event(
                _message_id(message, delivery), queue=delivery.queue, fecha_consumo=when, motivo=reason, dlq=dlq
            )
        else:
            event = failed_event(
                message, queue=delivery.queue, fecha_consumo=when, intentos=attempt, motivo=reason, dlq=dlq
            )
        publishes.append(_event(report_to, event, delivery, now))
    return Settlement(outcome.outcome, tuple(publishes), reason)


def next_try(now: datetime, delay: float, timezone: str) -> str:
    """When the retry copy comes back from its delay queue: ISO 8601 in `timezone`, to the
    millisecond (delays may be shorter than a second)."""
    return (now + timedelta(seconds=delay)).astimezone(ZoneInfo(timezone)).isoformat(timespec="milliseconds")


@lru_cache(maxsize=64)
def _fecha(second: int, timezone: str) -> str:
    """`fecha` has one-second resolution: a batch of messages shares one formatting."""
    return fecha(datetime.fromtimestamp(second, UTC), timezone)


def _message_id(message: Mapping[str, Any], delivery: Delivery) -> str | None:
    found = message.get("id")
    return str(found)[:200] if found is not None else delivery.message_id


def _event(report_to: str, event: dict[str, Any], delivery: Delivery, now: datetime) -> Publish:
    message_id = _message_id(event, delivery)
    return Publish(report_to, encode(event), message_properties(message_id, now=now))


def _copy(delivery: Delivery, queue: str, headers: dict[str, Any]) -> Publish:
    """The delivery as it came (body and properties), persistent, with our headers added: a PHP
    sender's non-persistent message must not be lost while it waits for a retry."""
    source = delivery.properties
    merged = {k: v for k, v in delivery.headers.items() if k != "x-death"}
    merged.update(headers)
    properties = pika.BasicProperties(
        content_type=source.content_type,
        content_encoding=source.content_encoding,
        delivery_mode=PERSISTENT,
        message_id=source.message_id,
        timestamp=source.timestamp,
        correlation_id=source.correlation_id,
        type=source.type,
        app_id=source.app_id,
        headers=merged,
    )
    return Publish(queue, delivery.body, properties)
