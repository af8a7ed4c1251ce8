"""Create bodies exactly as the `docker` SDK writes them for `containers.run(...)` (its own code,
no engine), so the rules are tested on what a client really sends."""

from __future__ import annotations

import json
from typing import Any

import docker
from docker.models.containers import _create_container_args

IMAGE = "cartero/consumer_sms:latest"
NETWORK = "cartero"
LABELS = {
    "cartero.role": "consumer",
    "cartero.queue": "cola_sms",
    "cartero.monitor": "monitor-cola_sms",
    "cartero.consumer": "consumer_sms",
    "cartero.slot": "0",
}
# An API client with a fixed version never connects: it only formats requests here.
_API = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")


def sdk_create_body(image: str = IMAGE, **overrides: Any) -> bytes:
    """What `containers.run(image, detach=True, …)` posts, with the monitor's arguments
    (monitor/docker_backend.py) unless `overrides` changes or adds some."""
    kwargs: dict[str, Any] = {
        "image": image,
        "name": "cartero-consumer_sms-0-abc123",
        "environment": {"AMQP_URL": "amqp://u:p@rabbitmq:5672/cartero", "CONSUMER_SMS_METRICS_PORT": "9101"},
        "labels": LABELS,
        "stop_signal": "SIGTERM",
        "network": NETWORK,
        "detach": True,
        **overrides,
        "version": "1.41",
    }
    create = _create_container_args(kwargs)
    create.pop("name", None)
    create.setdefault("command", None)
    config = _API.create_container_config(**create)
    # As the SDK posts it: top-level nulls left out (APIClient._post_json).
    return json.dumps({key: value for key, value in config.items() if value is not None}).encode()
