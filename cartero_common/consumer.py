"""The one consume loop every consumer runs: manual ack after the work, bounded prefetch,
reconnect with backoff, graceful stop.

A handler is a plain function `handler(delivery, publisher)`; returning means the work is done
and the message is acked. The loop owns the connection, so handlers never see pika.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from cartero_common.amqp import ConfirmedPublisher, connect

log = logging.getLogger(__name__)


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


Handler = Callable[[Delivery, ConfirmedPublisher], None]
Declare = Callable[[BlockingChannel], None]


class ConsumerLoop:
    def __init__(
        self,
        *,
        url: str,
        queue: str,
        handler: Handler,
        declare: Declare,
        prefetch: int = 50,
        heartbeat: int = 30,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = url
        self.queue = queue
        self.handler = handler
        self.declare = declare
        self.prefetch = prefetch
        self.heartbeat = heartbeat
        self.max_backoff = max_backoff
        self._stopping = threading.Event()
        self.connected = threading.Event()

    def stop(self, *_: object) -> None:
        """Ask the loop to stop after the message in hand; safe from a signal handler."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consume_once()
                backoff = 0.5
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.connected.clear()
                if self._stopping.is_set():
                    break
                log.warning(
                    "broker connection lost; reconnecting",
                    extra={"queue": self.queue, "error": repr(exc), "retry_in_s": backoff},
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        log.info("consumer stopped", extra={"queue": self.queue})

    def _consume_once(self) -> None:
        connection = connect(self.url, heartbeat=self.heartbeat)
        try:
            channel = connection.channel()
            self.declare(channel)
            channel.basic_qos(prefetch_count=self.prefetch)
            publisher_channel = connection.channel()
            publisher = ConfirmedPublisher(publisher_channel)

            def on_message(
                ch: BlockingChannel,
                method: pika.spec.Basic.Deliver,
                properties: pika.BasicProperties,
                body: bytes,
            ) -> None:
                if self._stopping.is_set():
                    # Stopping: leave it for another consumer rather than start new work.
                    ch.basic_nack(method.delivery_tag, requeue=True)
                    return
                delivery = Delivery(self.queue, body, properties, bool(method.redelivered), method.delivery_tag)
                self._handle(ch, delivery, publisher)

            tag = channel.basic_consume(self.queue, on_message, auto_ack=False)
            self.connected.set()
            log.info("consuming", extra={"queue": self.queue, "prefetch": self.prefetch})
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=0.5)
            channel.basic_cancel(tag)
        finally:
            self.connected.clear()
            if connection.is_open:
                try:
                    # Closing returns every prefetched, unacked message to the queue.
                    connection.close()
                except Exception:  # noqa: BLE001
                    pass

    def _handle(self, channel: BlockingChannel, delivery: Delivery, publisher: ConfirmedPublisher) -> None:
        try:
            self.handler(delivery, publisher)
        except (pika.exceptions.AMQPError, OSError):
            raise  # the connection is gone: the broker redelivers this message after reconnect
        except Exception:
            log.exception(
                "handler failed; message returned to the queue",
                extra={"queue": self.queue, "id": delivery.properties.message_id},
            )
            time.sleep(1.0)
            channel.basic_nack(delivery.delivery_tag, requeue=True)
            return
        channel.basic_ack(delivery.delivery_tag)
