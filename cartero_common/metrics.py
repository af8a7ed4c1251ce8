"""Prometheus helpers shared by the services."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONSUMER_MESSAGES = Counter(
    "consumer_messages_total", "Messages a consumer finished, by outcome.", ["queue", "outcome"]
)
CONSUMER_PROCESSING = Histogram(
    "consumer_processing_seconds", "Time to handle one message.", ["queue"], buckets=LATENCY_BUCKETS
)


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Expose `/metrics` on `port` from a background thread (non-HTTP services)."""
    start_http_server(port, addr=addr)
