"""What a consumer's handler hands back to the consume loop: one typed outcome per delivery.

A handler never touches the broker. It returns `Done` (the work is done, or was done before) or
a `Failure` (raised or returned): `TransientFailure` is retried through `<queue>.retry.*`,
`PermanentFailure` and `Unreadable` go straight to `<queue>.dlq`. The loop acks, retries,
dead-letters and reports each outcome on `logs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pika

from cartero_common.wire import Settled

ATTEMPT_HEADER = "x-cartero-attempt"


@dataclass(frozen=True)
class Delivery:
    queue: str
    body: bytes
    properties: pika.BasicProperties
    redelivered: bool
    delivery_tag: int

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    @property
    def attempt(self) -> int:
        """1 for the first delivery; the retry queues count up from there."""
        try:
            return max(1, int(self.headers.get(ATTEMPT_HEADER, 1)))
        except (TypeError, ValueError):
            return 1

    @property
    def message_id(self) -> str | None:
        found = self.properties.message_id
        return str(found) if found is not None else None


@dataclass(frozen=True)
class Publish:
    """One message the loop publishes (confirmed) before it acks the delivery it belongs to."""

    queue: str
    body: bytes
    properties: pika.BasicProperties


@dataclass(frozen=True)
class Done:
    """The work is done. `message` (the message as read), `consumed_at` and `provider` (the one
    that took it, when the consumer has providers) feed the `consumido` event; `duplicate` marks a
    redelivery of work finished before, reported with its first time and provider. `publishes`:
    what the work itself has to hand on (consumer_logs's webhook notifications), confirmed by the
    broker before the ack, as the event is."""

    message: Mapping[str, Any] | None = None
    consumed_at: datetime | None = None
    duplicate: bool = False
    provider: str | None = None
    publishes: tuple[Publish, ...] = ()


class Failure(Exception):
    """The work was not done; `reason` says why, for the log, the DLQ headers and the event."""

    outcome = Settled.FAILED

    def __init__(self, reason: str, *, message: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message

    def about(self, message: Mapping[str, Any]) -> Failure:
        """The same failure, naming the message it concerns (for the event)."""
        return type(self)(self.reason, message=message)


class TransientFailure(Failure):
    """Might work later (timeout, 5xx, SMTP 4xx): retried with growing delays, then dead-lettered."""


class PermanentFailure(Failure):
    """Will never work (SMTP 5xx, gateway 4xx, invalid phone): dead-lettered at once."""


class Unreadable(Failure):
    """Not a message we can read (not JSON, missing fields, wrong types, too big): dead-lettered
    at once and reported as `rechazado`."""

    outcome = Settled.REJECTED


Outcome = Done | Failure
BatchHandler = Callable[[Sequence[Delivery]], Sequence[Outcome]]
"""Takes the deliveries in hand (one, or a batch) and returns one outcome for each, in order."""
