"""Plumbing for the consumer tests: publishing like the senders do (ours and PHP's), reading
`logs`, a real HTTP SMS gateway, the consume loop in a thread, consumer processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import pika

from cartero_common.consume import ConsumerLoop, Delivery, Done, Ledger, Outcome, migrate_ledger
from cartero_common.consume.outcomes import TransientFailure
from cartero_common.db import make_engine
from cartero_common.wire import route_exchange
from tests.support import ROOT, consumer_count, drain, python_env, rabbit_api, wait_until

FAST_DELAYS = "200ms,400ms"


def publish(
    url: str, queue: str, payload: dict[str, Any] | bytes, *, php: bool = False, passive: bool = False, **props: Any
) -> None:
    """Ours: persistent, JSON, message_id = id. `php=True`: what the PHP senders send — no
    properties at all, hence not persistent. `passive=True`: as the sender's role publishes: the
    queue and its route exchange exist already (`rabbitmq-setup`), and the message goes through
    that exchange, not the default one, which the role may not use."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    if php:
        properties = None
    else:
        message_id = payload.get("id") if isinstance(payload, dict) else None
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=message_id, **props
        )
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, passive=passive)
        channel.basic_publish(route_exchange(queue) if passive else "", queue, body, properties)
    finally:
        connection.close()


def sms(message_id: str, telefono: str = "+34600111222", mensaje: str = "hola") -> dict[str, Any]:
    return {"id": message_id, "mensaje": mensaje, "telefono": telefono, "fecha": "2026-07-01 10:00:00"}


def email(message_id: str, destinatario: str = "ana@example.com") -> dict[str, Any]:
    return {
        "id": message_id,
        "destinatario": destinatario,
        "asunto": "Cita confirmada — mañana",
        "cuerpo": "¡Hola, Ana! Te esperamos el jueves.",
        "fecha": "2026-07-01 10:00:00",
    }


def odd_json(good: dict[str, Any]) -> list[bytes]:
    """Bodies past what a JSON parser holds: nested 30,000 deep, then `good`'s fields (an id of
    their own) with a deep extra field, one nested a level past the accepted depth, a 5,000-digit
    integer, a lone surrogate."""
    fields = json.dumps({k: v for k, v in good.items() if k != "id"}, ensure_ascii=False)[1:-1]

    def body(message_id: str, extra: str) -> bytes:
        return ("{" + fields + f', "id": "{message_id}", ' + extra + "}").encode()

    return [
        b"[" * 30_000 + b"]" * 30_000,
        body("odd-deep", '"x": ' + "[" * 5_000 + "]" * 5_000),
        body("odd-65", '"x": ' + "[" * 64 + "]" * 64),
        body("odd-int", '"n": ' + "7" * 5_000),
        body("odd-surrogate", '"nota": "\\ud800"'),
    ]


def events(url: str) -> list[dict[str, Any]]:
    """Every event now on `logs` (removed from the queue)."""
    return [json.loads(body) for _, body in drain(url, "logs")]


def vhost_of(url: str) -> str:
    return unquote(urlparse(url).path.lstrip("/")) or "/"


def connections(url: str, name_prefix: str) -> list[str]:
    found = rabbit_api("GET", f"/vhosts/{quote(vhost_of(url), safe='')}/connections").json()
    names = [c.get("client_properties", {}).get("connection_name", "") for c in found]
    return [c["name"] for c, n in zip(found, names, strict=True) if n.startswith(name_prefix) and "(setup)" not in n]


def close_connections(url: str, name_prefix: str) -> int:
    """Drop the consumer's broker connections, as a broker restart or a network cut would.
    The management API lists a new connection only after its next stats tick: wait for it."""
    names = wait_until(lambda: connections(url, name_prefix), timeout=15, what=f"connection {name_prefix} listed")
    for name in names:
        rabbit_api("DELETE", f"/connections/{quote(name, safe='')}", headers={"X-Reason": "test: broker gone"})
    return len(names)


@contextmanager
def running(loop: ConsumerLoop) -> Iterator[ConsumerLoop]:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert loop.connected.wait(15), "the consumer did not connect"
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(15)
        assert not thread.is_alive(), "the consumer did not stop"


class Gateway:
    """A real HTTP SMS gateway on a free port: answers the scripted statuses in turn (then 200)
    and keeps every request it got (with the `time.monotonic()` it got it at)."""

    def __init__(self, statuses: list[int] | None = None, *, delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.received = threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                gateway.received.set()
                time.sleep(gateway.delay)
                gateway.requests.append(
                    {"body": body, "idempotency_key": self.headers.get("Idempotency-Key"), "at": time.monotonic()}
                )
                status = gateway.statuses.pop(0) if gateway.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status < 300 else b'{"error": "scripted"}')

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls_for(self, message_id: str) -> int:
        return sum(1 for r in self.requests if r["body"]["id"] == message_id)


def start_consumer(service: str, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """`python -m <service>` as its own process, settings from the environment only."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", service], cwd=ROOT, env=python_env(**env), stdout=out, stderr=subprocess.STDOUT
        )


def wait_consuming(url: str, queue: str, process: subprocess.Popen[bytes], *, timeout: float = 20) -> None:
    def ready() -> bool:
        assert process.poll() is None, f"consumer exited with {process.returncode}"
        return consumer_count(url, queue) > 0

    wait_until(ready, timeout=timeout, interval=0.2, what=f"a consumer on {queue}")


def ledger_for(database_url: str, queue: str) -> Ledger:
    migrate_ledger(database_url)
    return Ledger(make_engine(database_url), queue)


class FailsOnce:
    """Fails each message's first attempt (a transient provider error), then delivers it."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self.done = threading.Event()

    def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for delivery in batch:
            message = json.loads(delivery.body)
            self.attempts.append((message["id"], delivery.attempt))
            if delivery.attempt == 1:
                outcomes.append(TransientFailure("provider busy"))
            else:
                outcomes.append(Done(message))
                self.done.set()
        return outcomes
