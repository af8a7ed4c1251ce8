from __future__ import annotations

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cartero_common.metrics import LATENCY_BUCKETS

REQUESTS = Counter(
    "sender_requests_total",
    "API requests answered, by endpoint (the route's path template, `other` when no route matched) and HTTP status"
    " code.",
    ["endpoint", "code"],
)
# The label for a path no route serves. Labels are never taken from the request itself: a client
# could otherwise make one series per path it invents, without bound.
UNMATCHED = "other"
PUBLISH_SECONDS = Histogram(
    "sender_publish_seconds",
    "Time from publish to broker confirm (message and log event).",
    buckets=LATENCY_BUCKETS,
)
LATE_CONFIRMS = Counter(
    "sender_late_confirms_total",
    "Broker answers to publishes that had no confirm when the client was answered, by result"
    " (ack, nack, returned, lost).",
    ["result"],
)
EVENT_PUBLISH_FAILURES = Counter(
    "sender_event_publish_failures_total",
    "Confirmed messages whose `enviado` event the broker did not confirm with them.",
)
UNCONFIRMED_PUBLISHES = Counter(
    "sender_publish_unconfirmed_total",
    "Publishes answered 503 publish_unconfirmed: the broker may hold the message, the use is kept.",
)

VALIDATOR_BATCH_SIZE = Histogram(
    "sender_validator_batch_size",
    "Validations sent to the token validator in one request.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


def endpoint_of(scope: Scope) -> str:
    """The template of the route that took the request (`/v1/sms`, or `/v1/x/{id}` for a route with
    a parameter), which the router puts in the scope; `other` if none did."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


def code_of(status: int) -> str:
    """The status as sent; anything outside HTTP's range (it cannot happen, but a label must be
    bounded whatever happens) is counted as `other`."""
    return str(status) if 100 <= status <= 599 else UNMATCHED


class CountRequests:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware) counting `/v1/`
    answers by route template and status: a closed set of label values, whatever paths arrive."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                REQUESTS.labels(endpoint_of(scope), code_of(int(message["status"]))).inc()
            await send(message)

        await self.app(scope, receive, send_counted)


STATUS_REQUESTS = Counter(
    "sender_status_requests_total",
    "`GET /v1/messages/{id}` answers, by outcome (found, not_found, unauthorized, forbidden, unavailable).",
    ["outcome"],
)
STATUS_SECONDS = Histogram(
    "sender_status_seconds",
    "Time to answer `GET /v1/messages/{id}`, the validator's identify and the message log's status included.",
    buckets=LATENCY_BUCKETS,
)
