"""The asyncio publisher: one long-lived robust connection, publisher confirms, bounded waits.

The sender answers 202 only after `publish` returned, i.e. after the broker confirmed a
persistent, routed message. Every wait is bounded so a broker outage becomes a quick 503, not a
hung request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from pamqp import commands

from cartero_common.schemas import SHARED_QUEUES

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not take the message (down, unreachable, refused or too slow)."""


class AsyncPublisher:
    def __init__(self, url: str, *, timeout: float = 2.0, queues: Iterable[str] = SHARED_QUEUES) -> None:
        self.url = url
        self.timeout = timeout
        self.queues = tuple(queues)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def _ensure_channel(self) -> AbstractRobustChannel:
        if self.connected:
            assert self._channel is not None
            return self._channel
        async with self._lock:
            if self.connected:
                assert self._channel is not None
                return self._channel
            await self._close_quietly()
            connection = await aio_pika.connect_robust(self.url, timeout=self.timeout)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            for queue in self.queues:
                await channel.declare_queue(queue, durable=True)
            self._connection = connection
            self._channel = channel
            log.info("connected to the broker")
            return channel

    async def start(self) -> None:
        """Connect now if the broker is there; if not, the first publish retries."""
        try:
            await asyncio.wait_for(self._ensure_channel(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - startup must not fail on a broker outage
            log.warning("broker not reachable at startup", extra={"error": str(exc)})

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self._ensure_channel(), self.timeout)
        except Exception:  # noqa: BLE001
            return False
        return True

    async def publish(self, queue: str, body: bytes, *, message_id: str | None, now: datetime) -> None:
        message = aio_pika.Message(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            timestamp=now,
        )
        try:
            async with asyncio.timeout(self.timeout):
                channel = await self._ensure_channel()
                confirmation = await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"no confirm from the broker within {self.timeout}s") from exc
        except Exception as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        if not isinstance(confirmation, commands.Basic.Ack):
            raise BrokerUnavailable(f"the broker refused the message: {type(confirmation).__name__}")

    async def _close_quietly(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.close()
            except Exception:  # noqa: BLE001
                pass
        self._connection = None
        self._channel = None

    async def close(self) -> None:
        async with self._lock:
            await self._close_quietly()
