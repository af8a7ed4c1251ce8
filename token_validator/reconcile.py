"""Uses kept for a publish whose outcome the sender could not learn, and how they are settled.

A sender that got no confirm in time (or lost its connection with the publish in flight) keeps
the use and marks it unconfirmed (`mark`), with the message id. It is settled one of three ways:

1. the broker's late answer, while that sender lives: an ack confirms the use (`settle`), a nack
   refunds it (`token_validator.usage.refund`);
2. a retry with the same Idempotency-Key, which republishes the same id: its confirm settles it;
3. otherwise, reconciliation here, once the mark is `reconcile_after_seconds` old: the message
   log is asked for the message id. Any event a consumer reports for it (`consumido`,
   `reintento`, `fallido`, `rechazado`) proves the message reached its queue: the use is settled.
   No such event means the message never reached the broker (a message in its queue is consumed
   and reported well within that time): the use is refunded. The sender's own `enviado` proves
   nothing, since it is published beside the message. When the message log cannot be asked, the
   use stays kept until it can.

The bound this rests on: a message that did reach its queue is reported by a consumer within
`reconcile_after_seconds`. Raise it above the longest backlog or consumer outage you expect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import Gauge
from sqlalchemy import Engine, func, select, update

from cartero_common.wire import CONSUMER_EVENTS
from token_validator import usage
from token_validator.idempotency import DONE, UNCONFIRMED, mark_key
from token_validator.models import Usage
from token_validator.moment import Moment

log = logging.getLogger(__name__)
KEPT_USES = Gauge(
    "validator_unconfirmed_uses",
    "Uses kept for a publish whose outcome is unknown, not yet settled (as of the last reconciliation).",
)
BATCH = 200


def mark(engine: Engine, usage_id: str, message_id: str, moment: Moment) -> bool:
    """Keep the use until it is settled; False if there is no such use, or it was refunded."""
    with engine.begin() as connection:
        result = connection.execute(
            update(Usage)
            .where(Usage.id == usage_id, Usage.refunded_at.is_(None))
            .values(message_id=message_id, unconfirmed_at=moment.now)
        )
        if not result.rowcount:
            return False
        mark_key(connection, usage_id, UNCONFIRMED)
    return True


def settle(engine: Engine, usage_id: str) -> bool:
    """The message reached the broker: the use is rightly counted, and its Idempotency-Key (if
    any) replays the 202 from now on. False if the use was not kept."""
    with engine.begin() as connection:
        result = connection.execute(
            update(Usage)
            .where(Usage.id == usage_id, Usage.unconfirmed_at.is_not(None), Usage.refunded_at.is_(None))
            .values(unconfirmed_at=None)
        )
        if result.rowcount:
            mark_key(connection, usage_id, DONE)
    return bool(result.rowcount)


def due(engine: Engine, before: datetime, limit: int = BATCH) -> list[tuple[str, str]]:
    """(usage id, message id) of the uses kept unconfirmed since `before` or earlier, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Usage.id, Usage.message_id)
            .where(Usage.unconfirmed_at.is_not(None), Usage.unconfirmed_at <= before, Usage.refunded_at.is_(None))
            .order_by(Usage.unconfirmed_at)
            .limit(limit)
        ).all()
    return [(row.id, row.message_id or "") for row in rows]


def kept(engine: Engine) -> int:
    """How many uses are kept unconfirmed right now."""
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count()).where(Usage.unconfirmed_at.is_not(None), Usage.refunded_at.is_(None))
        ).scalar_one()
    return int(count)


class MessageLogUnavailable(Exception):
    """The message log did not answer; nothing can be decided now."""


MessageLookup = Callable[[str], Iterable[str]]


def message_log_lookup(url: str, *, timeout: float = 5.0, read_key: str = "") -> MessageLookup:
    """The `evento` of every logged event for a message id, from consumer_logs' `GET /v1/events`."""
    headers = {"Authorization": f"Bearer {read_key}"} if read_key else {}

    def events_of(message_id: str) -> list[str]:
        try:
            response = httpx.get(
                f"{url.rstrip('/')}/v1/events",
                params={"id": message_id, "limit": 1000},
                headers=headers,
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise MessageLogUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise MessageLogUnavailable(f"the message log answered {response.status_code}")
        try:
            return [str(event.get("evento")) for event in response.json()]
        except (ValueError, AttributeError, TypeError):
            raise MessageLogUnavailable("the message log answered something that is not a list of events") from None

    return events_of


@dataclass(frozen=True)
class Report:
    settled: int = 0
    refunded: int = 0
    undecided: int = 0


def reconcile(engine: Engine, events_of: MessageLookup, moment: Moment, after: timedelta) -> Report:
    """Settle or refund every use kept unconfirmed for `after` or longer."""
    settled = refunded = undecided = 0
    for usage_id, message_id in due(engine, moment.now - after):
        try:
            reached = bool(CONSUMER_EVENTS.intersection(events_of(message_id))) if message_id else False
        except MessageLogUnavailable as exc:
            log.warning("reconciliation waits for the message log", extra={"error": str(exc)})
            undecided += 1
            break
        context = {"usage_id": usage_id, "id": message_id}
        if reached:
            if settle(engine, usage_id):
                settled += 1
                log.info("kept use settled: the message reached its queue", extra=context)
        elif usage.refund(engine, usage_id, moment) == "refunded":
            refunded += 1
            log.warning("kept use refunded: the message never reached the broker", extra=context)
    KEPT_USES.set(kept(engine))
    return Report(settled, refunded, undecided)
