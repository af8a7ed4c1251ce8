"""What consumer_logs does with the `logs` messages in hand: store them, readable or not, in one
transaction per batch (one commit for up to CONSUMER_BATCH_SIZE events), the message's content
only when CONSUMER_LOGS_STORE_CONTENT says so; then, with `notify`, hand the owners' webhook
notifications to `webhooks` (`consumer_logs.notifications`), published and confirmed before the
`logs` messages are acked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import sessionmaker

from cartero_common.amqp.blocking import encode, message_properties
from cartero_common.clock import Clock
from cartero_common.consume import BatchHandler, Delivery, Done, Outcome
from cartero_common.consume.outcomes import Publish
from cartero_common.metrics import WEBHOOK_NOTIFICATIONS
from cartero_common.webhook_wire import QUEUE_WEBHOOKS, Notification
from consumer_logs.notifications import notifications_for
from consumer_logs.repository import add_events, event_row


def make_handler(
    sessions: sessionmaker[Any], clock: Clock, *, store_content: bool, notify: bool = False
) -> BatchHandler:
    def store(batch: Sequence[Delivery]) -> list[Outcome]:
        now = clock()
        rows = [event_row(d.body, message_id=d.message_id, now=now, store_content=store_content) for d in batch]
        with sessions.begin() as session:
            add_events(session, rows)
            found = notifications_for(session, rows) if notify else []
        if not found:
            return [Done() for _ in batch]
        # Each notification rides on the first delivery of the batch that brought it about.
        first_of: dict[str, int] = {}
        for index, row in enumerate(rows):
            first_of.setdefault(row["digest"], index)
        publishes: list[list[Publish]] = [[] for _ in batch]
        for digest, note in found:
            publishes[first_of[digest]].append(_publish(note, now))
            WEBHOOK_NOTIFICATIONS.labels(note.type).inc()
        return [Done(publishes=tuple(p)) for p in publishes]

    return store


def _publish(note: Notification, now: datetime) -> Publish:
    return Publish(QUEUE_WEBHOOKS, encode(note.model_dump()), message_properties(note.event_id, now=now))
