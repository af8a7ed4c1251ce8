"""Scale events on `logs`: persistent and confirmed, kept and retried while the broker is away."""

from __future__ import annotations

import logging
import uuid
from collections import deque
from typing import Any

from cartero_common.amqp import ConfirmedPublisher, connect, declare_shared_queues
from cartero_common.amqp.blocking import ensure_route
from cartero_common.amqp.queue_type import CLASSIC, QueueType
from cartero_common.clock import Clock
from cartero_common.wire import QUEUE_LOGS, route_exchange

log = logging.getLogger(__name__)

_MAX_PENDING = 10_000


class EventPublisher:
    """Scale changes are rare, so each batch opens its own connection: nothing idles to time out."""

    def __init__(self, url: str, *, clock: Clock, queue_type: QueueType = CLASSIC) -> None:
        self.url = url
        self.queue_type = queue_type
        self.clock = clock
        self.pending: deque[dict[str, Any]] = deque(maxlen=_MAX_PENDING)

    def publish(self, events: list[dict[str, Any]]) -> bool:
        """Send `events` and any left from before; False (and kept for next time) if the broker is away."""
        self.pending.extend(events)
        if not self.pending:
            return True
        try:
            connection = connect(self.url)
        except Exception as exc:  # noqa: BLE001 - any connection failure means "later"
            log.warning(
                "broker unreachable; scale events kept for later",
                extra={"pending": len(self.pending), "error": repr(exc)},
            )
            return False
        try:
            channel = ensure_route(
                declare_shared_queues(connection.channel(), (QUEUE_LOGS,), queue_type=self.queue_type), QUEUE_LOGS
            )
            publisher = ConfirmedPublisher(channel)
            while self.pending:
                publisher.publish(
                    QUEUE_LOGS,
                    self.pending[0],
                    message_id=str(uuid.uuid4()),
                    now=self.clock(),
                    exchange=route_exchange(QUEUE_LOGS),
                )
                self.pending.popleft()
        except Exception as exc:  # noqa: BLE001
            log.warning(
                "publishing scale events failed; kept for later",
                extra={"pending": len(self.pending), "error": repr(exc)},
            )
            return False
        finally:
            if connection.is_open:
                connection.close()
        return True
