"""What consumer_webhooks does with what it consumes (docs/webhooks.md, "Deliveries").

- `fan_out` (on `webhooks`): one notification for one owner → one delivery per endpoint of that
  owner subscribed to its type, published (confirmed) to `webhook_deliveries` before the ack.
- `deliver` (on `webhook_deliveries`): one POST, signed as Standard Webhooks says. A 2xx is
  delivered; any other answer, a timeout or a connection error is retried through
  `webhook_deliveries.retry.<delay>`, then dead-lettered. The URL is checked again before each
  POST (what a name resolves to can change); a refused one is dead-lettered at once. The POST
  goes to an address that check resolved (never to the name, which could resolve elsewhere a
  moment later), within one deadline for the whole exchange, reading at most `MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from cartero_common.amqp.blocking import encode, message_properties
from cartero_common.callback_urls import IpAddress
from cartero_common.clock import Clock
from cartero_common.consume import BatchHandler, Delivery, Done, Outcome, PermanentFailure, TransientFailure
from cartero_common.consume.delivery import read_message
from cartero_common.consume.outcomes import Failure, Publish
from cartero_common.metrics import WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_SECONDS
from cartero_common.webhook_wire import QUEUE_WEBHOOK_DELIVERIES, Notification, WebhookDelivery
from consumer_webhooks.endpoints import Endpoint, EndpointDirectory, EndpointsUnavailable

log = logging.getLogger("consumer_webhooks")

# What `check_url(url)` raises: refused for good, or (the name did not resolve) maybe for a moment.
UrlRefused = ValueError
# The addresses the URL's host resolved to, each one checked.
UrlCheck = Callable[[str], Sequence[IpAddress]]
# Only the status matters; a receiver's long answer is not read.
MAX_ANSWER_BYTES = 4096


class _Deadline:
    """Shuts the POST's sockets down once `seconds` have passed. httpx's timeout bounds each
    connect, read and write on its own, so a receiver sending a byte now and then would hold a
    worker for ever; a shut socket ends whatever read or write is waiting on it."""

    def __init__(self, seconds: float) -> None:
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def __enter__(self) -> _Deadline:
        self.timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` extension: told of each connection made for the request."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        sock = info["return_value"].get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            return
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def post_pinned(
    client: httpx.Client, url: str, address: IpAddress, *, body: bytes, headers: dict[str, str], budget: float
) -> int:
    """POST to `address` as if to `url`'s host: its `Host` header and, for https, its TLS server
    name and certificate check (httpcore's `sni_hostname`). The whole exchange gets `budget`
    seconds; the answer's status is returned, at most `MAX_ANSWER_BYTES` of its body read."""
    target = httpx.URL(url)
    host = target.raw_host.decode("ascii")
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(budget).as_dict()}
    if target.scheme == "https":
        extensions["sni_hostname"] = host
    # A fresh connection each time: a kept one was verified for whichever host opened it.
    pinned_headers = {**headers, "host": target.netloc.decode("ascii"), "connection": "close"}
    with _Deadline(budget) as deadline:
        extensions["trace"] = deadline.trace
        request = client.build_request(
            "POST", target.copy_with(host=str(address)), content=body, headers=pinned_headers, extensions=extensions
        )
        try:
            answer = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            if deadline.expired:
                raise httpx.ReadTimeout(f"no answer within {budget:g} s", request=request) from exc
            raise
        try:
            read = 0
            try:
                for chunk in answer.iter_raw():
                    read += len(chunk)
                    if read >= MAX_ANSWER_BYTES:
                        break
            except httpx.HTTPError:
                pass  # the status came; what follows it does not change the outcome
        finally:
            answer.close()
    return answer.status_code


def webhook_id(event_id: str, endpoint_id: int) -> str:
    """The same for every attempt at one event for one endpoint, so a receiver can drop repeats."""
    return "msg_" + hashlib.sha256(f"{event_id}:{endpoint_id}".encode()).hexdigest()[:32]


def fan_out(directory: EndpointDirectory, clock: Clock) -> BatchHandler:
    def handle(batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for delivery in batch:
            try:
                _, note = read_message(delivery, Notification)
                outcomes.append(Done(publishes=tuple(_deliveries(note, directory.endpoints(note.owner_ref), clock()))))
            except EndpointsUnavailable as exc:
                outcomes.append(TransientFailure(str(exc)))
            except Failure as failure:
                outcomes.append(failure)
        return outcomes

    return handle


def _deliveries(note: Notification, endpoints: Sequence[Endpoint], now: datetime) -> list[Publish]:
    found = []
    for endpoint in endpoints:
        if not endpoint.enabled or note.type not in endpoint.events:
            continue
        item = WebhookDelivery(
            endpoint_id=endpoint.id,
            owner_ref=note.owner_ref,
            webhook_id=webhook_id(note.event_id, endpoint.id),
            type=note.type,
            timestamp=note.timestamp,
            data=note.data,
        )
        found.append(
            Publish(QUEUE_WEBHOOK_DELIVERIES, encode(item.model_dump()), message_properties(item.webhook_id, now=now))
        )
    return found


def signed_request(item: WebhookDelivery, secret: str, *, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers for one attempt (`webhook-timestamp` is the
    attempt's own time: receivers refuse old ones, so a replayed request does not pass)."""
    body = encode({"type": item.type, "timestamp": item.timestamp, "data": item.data})
    signature = Webhook(secret).sign(item.webhook_id, now, body.decode())
    return body, {
        "webhook-id": item.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "Cartero-Webhooks/1",
    }


def deliver(
    directory: EndpointDirectory,
    *,
    client: httpx.Client,
    check_url: UrlCheck,
    transient_url_errors: tuple[type[Exception], ...],
    max_attempts: int,
    timeout: float,
    clock: Clock = lambda: datetime.now(UTC),
) -> BatchHandler:
    """`check_url` returns the addresses the URL may be called on, or raises a ValueError for a URL
    that may not be called; those of `transient_url_errors` (a name that did not resolve) are
    retried, the others dead-lettered. `timeout` is each POST's whole budget, in seconds."""

    def attempt(delivery: Delivery) -> Outcome:
        _, item = read_message(delivery, WebhookDelivery)
        try:
            endpoints = directory.endpoints(item.owner_ref)
        except EndpointsUnavailable as exc:
            return _retrying(delivery, str(exc), max_attempts)
        endpoint = next((e for e in endpoints if e.id == item.endpoint_id), None)
        if endpoint is None or item.type not in endpoint.events:
            # Deleted, disabled or no longer subscribed since it was queued: nothing to send.
            WEBHOOK_DELIVERIES.labels("dropped").inc()
            log.info("endpoint gone; delivery dropped", extra={"endpoint": item.endpoint_id, "id": item.webhook_id})
            return Done()
        try:
            addresses = check_url(endpoint.url)
        except transient_url_errors as exc:
            return _retrying(delivery, f"callback URL not resolved: {exc}", max_attempts)
        except UrlRefused as exc:
            WEBHOOK_DELIVERIES.labels("refused").inc()
            return PermanentFailure(f"callback URL refused: {exc}")
        body, headers = signed_request(item, endpoint.secret, now=clock())
        started = time.perf_counter()
        try:
            status = post_pinned(client, endpoint.url, addresses[0], body=body, headers=headers, budget=timeout)
        except httpx.HTTPError as exc:
            return _retrying(delivery, f"POST failed: {type(exc).__name__}", max_attempts)
        finally:
            WEBHOOK_DELIVERY_SECONDS.observe(time.perf_counter() - started)
        if 200 <= status < 300:
            WEBHOOK_DELIVERIES.labels("delivered").inc()
            return Done()
        return _retrying(delivery, f"receiver answered {status}", max_attempts)

    def handle(batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for delivery in batch:
            try:
                outcomes.append(attempt(delivery))
            except Failure as failure:
                outcomes.append(failure)
        return outcomes

    return handle


def _retrying(delivery: Delivery, reason: str, max_attempts: int) -> TransientFailure:
    WEBHOOK_DELIVERIES.labels("retrying" if delivery.attempt < max_attempts else "failed").inc()
    return TransientFailure(reason)
