"""The labels the monitor puts on every consumer container it starts.

The monitor sets them and finds its replicas by them; the Docker API gate lets a client touch
only containers that carry `cartero.role=consumer`. Both read them from here.
"""

from __future__ import annotations

ROLE = "cartero.role"
QUEUE = "cartero.queue"
MONITOR = "cartero.monitor"
CONSUMER = "cartero.consumer"
SLOT = "cartero.slot"
CONSUMER_ROLE = "consumer"
