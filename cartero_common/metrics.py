"""Prometheus helpers shared by the services."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from cartero_common.wire import Settled

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONSUMER_MESSAGES = Counter(
    "consumer_messages_total",
    "Messages a consumer settled, by outcome (consumido, duplicado, reintento, fallido, rechazado).",
    ["queue", "outcome"],
)
CONSUMER_PROCESSING = Histogram(
    "consumer_processing_seconds", "Time to handle one message.", ["queue"], buckets=LATENCY_BUCKETS
)
CONSUMER_RETRIES = Counter("consumer_retries_total", "Messages sent to a retry queue.", ["queue"])
CONSUMER_DEAD_LETTERS = Counter(
    "consumer_dead_letters_total", "Messages moved to the dead-letter queue, by outcome.", ["queue", "outcome"]
)


def serve_metrics(port: int, *, host: str) -> bool:
    """Expose `/metrics` on `host`:`port` from a background thread (non-HTTP services).

    Port 0 means no metrics endpoint. A port already taken (several consumers of one kind on
    one host with the same setting) is logged and skipped: a consumer that cannot be scraped
    must still consume. Returns whether the endpoint is up.
    """
    if port == 0:
        log.info("metrics endpoint disabled (port 0)")
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning(
            "metrics port unavailable; running without a metrics endpoint",
            extra={"host": host, "port": port, "error": str(exc)},
        )
        return False
    log.info("metrics endpoint up", extra={"host": host, "port": port})
    return True


class ConsumerMetrics:
    """The consume loop's metrics for one queue, label children looked up once."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._processing = CONSUMER_PROCESSING.labels(queue)
        self._retries = CONSUMER_RETRIES.labels(queue)
        self._outcomes: dict[str, Counter] = {}

    def settled(self, outcome: str, seconds: float) -> None:
        self._processing.observe(seconds)
        counter = self._outcomes.get(outcome)
        if counter is None:
            counter = self._outcomes[outcome] = CONSUMER_MESSAGES.labels(self.queue, outcome)
        counter.inc()
        if outcome == Settled.RETRYING:
            self._retries.inc()
        elif outcome in (Settled.FAILED, Settled.REJECTED):
            CONSUMER_DEAD_LETTERS.labels(self.queue, outcome).inc()


# Provider failover (cartero_common.consume.failover). `provider` is one of the configured
# providers (a gateway URL without credentials or query, an SMTP `host:port`): bounded by the list.
PROVIDER_CIRCUIT_STATE = Gauge(
    "provider_circuit_state",
    "A provider's circuit breaker: 0 closed, 1 half-open (the next call is a probe), 2 open.",
    ["service", "provider"],
)
PROVIDER_ATTEMPTS = Counter(
    "provider_attempts_total",
    "Calls to a provider by outcome: sent, transient, permanent, or skipped_open (circuit open, not called).",
    ["service", "provider", "outcome"],
)
PROVIDER_FAILOVERS = Counter(
    "provider_failovers_total",
    "Messages a provider other than the first in the list took, the ones before it having failed or being open.",
    ["service"],
)

# Webhooks (docs/webhooks.md): the notifications consumer_logs hands on, by type, and what
# consumer_webhooks made of each attempt to deliver one.
WEBHOOK_NOTIFICATIONS = Counter(
    "webhook_notifications_total",
    "Notifications consumer_logs published on `webhooks`, by type (message.sent, message.retrying, message.failed).",
    ["type"],
)
WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries_total",
    "Attempts to deliver a webhook, by outcome: delivered (2xx), retrying, failed (given up: dead-lettered), "
    "refused (the URL is not allowed), dropped (the endpoint is gone or disabled).",
    ["outcome"],
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "webhook_delivery_seconds",
    "Time of one POST to a receiver, whatever its answer.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
