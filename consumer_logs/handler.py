"""What consumer_logs does with the `logs` messages in hand: store them, readable or not, in one
transaction per batch (one commit for up to CONSUMER_BATCH_SIZE events), the message's content
only when CONSUMER_LOGS_STORE_CONTENT says so."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import sessionmaker

from cartero_common.clock import Clock
from cartero_common.consume import BatchHandler, Delivery, Done, Outcome
from consumer_logs.repository import add_events, event_row


def make_handler(sessions: sessionmaker[Any], clock: Clock, *, store_content: bool) -> BatchHandler:
    def store(batch: Sequence[Delivery]) -> list[Outcome]:
        now = clock()
        rows = [event_row(d.body, message_id=d.message_id, now=now, store_content=store_content) for d in batch]
        with sessions.begin() as session:
            add_events(session, rows)
        return [Done() for _ in batch]

    return store
