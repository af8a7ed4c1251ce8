"""The monitor's Prometheus metrics (served on MONITOR_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REPLICAS = Gauge("monitor_replicas", "Consumers the monitor wants (desired) and has (running).", ["queue", "kind"])
SCALE_EVENTS = Counter("monitor_scale_events_total", "Replicas started (up) or removed (down).", ["queue", "direction"])
SOURCE_ERRORS = Counter("monitor_source_errors_total", "Depth readings that failed (the count was held).", ["queue"])
BACKEND_ERRORS = Counter("monitor_backend_errors_total", "Backend operations that failed.", ["queue"])
QUEUE_MESSAGES = Gauge("monitor_queue_messages", "Messages the last good reading counted.", ["queue"])


def initialise(queue: str) -> None:
    """Make every series exist from the start, so a rate() over them is defined at zero."""
    for kind in ("desired", "running"):
        REPLICAS.labels(queue, kind)
    for direction in ("up", "down"):
        SCALE_EVENTS.labels(queue, direction)
    SOURCE_ERRORS.labels(queue)
    BACKEND_ERRORS.labels(queue)
    QUEUE_MESSAGES.labels(queue)
