"""What consumer_logs does with each `logs` message: store it, readable or not."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import sessionmaker

from cartero_common.amqp import ConfirmedPublisher
from cartero_common.clock import Clock
from cartero_common.consumer import Delivery
from consumer_logs.repository import add_events, event_from_body


def make_handler(sessions: sessionmaker[Any], clock: Clock):  # type: ignore[no-untyped-def]
    def store(delivery: Delivery, _: ConfirmedPublisher) -> None:
        event = event_from_body(delivery.body, message_id=delivery.properties.message_id, now=clock())
        with sessions.begin() as session:
            add_events(session, [event])

    return store
