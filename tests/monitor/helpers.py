"""Plumbing for the monitor's tests: a backlog to scale on, and an eye on the `logs` queue."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pika

from tests.support import free_port, wait_until


def publish_sms(url: str, count: int, *, queue: str = "cola_sms", prefix: str = "m") -> list[str]:
    """`count` persistent SMS messages in `queue` (no consumer on it yet), as a sender writes them."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        before = int(channel.queue_declare(queue, durable=True).method.message_count)
        ids = [f"{prefix}{i}" for i in range(count)]
        for message_id in ids:
            body = {"id": message_id, "mensaje": "hola", "telefono": "600111222", "fecha": "2026-07-01 10:00:00"}
            props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=message_id)
            channel.basic_publish("", queue, json.dumps(body).encode(), props)
    finally:
        connection.close()
    # Published without confirms, for speed; the queue's depth is the confirmation.
    wait_until(lambda: queue_info(url, queue)[0] >= before + count, timeout=30, what=f"{count} messages in {queue}")
    return ids


def queue_info(url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) from a passive declare: exact and immediate."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ok = connection.channel().queue_declare(queue, passive=True).method
        return int(ok.message_count), int(ok.consumer_count)
    finally:
        connection.close()


def consumers_on(url: str, queue: str = "cola_sms") -> int:
    return queue_info(url, queue)[1]


class LogsWatcher:
    """Consumes `logs` in a vhost on a thread and keeps every event, so a test can read them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # time.monotonic() when each event came in
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LogsWatcher:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("could not start consuming logs")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = connection.channel()
        channel.queue_declare("logs", durable=True)
        channel.basic_qos(prefetch_count=1000)

        def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
            with self._lock:
                self.events.append(json.loads(body))
                self.arrived.append(time.monotonic())
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume("logs", on_message)
        self._ready.set()
        while not self._stop.is_set():
            connection.process_data_events(time_limit=0.2)
        connection.close()

    def of(self, *eventos: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("evento") in eventos]

    def arrival(self, evento: str, **fields: Any) -> float:
        """When the first `evento` event with these fields came in."""
        with self._lock:
            for event, at in zip(self.events, self.arrived, strict=True):
                if event.get("evento") == evento and all(event.get(k) == v for k, v in fields.items()):
                    return at
        raise LookupError(f"no {evento} event with {fields}")

    def last_arrival(self, evento: str) -> float:
        with self._lock:
            return max(at for event, at in zip(self.events, self.arrived, strict=True) if event.get("evento") == evento)

    def consumed_ids(self) -> list[str]:
        return [str(e["id"]) for e in self.of("consumido")]


def free_port_range(count: int) -> int:
    """A port `p` such that p … p+count-1 are all free now."""
    for _ in range(50):
        base = free_port()
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports")


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if it is not there."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == want:
            return float(value)
    return None
