"""The consumers' metrics endpoint: port 0 is off, a taken port is not fatal."""

from __future__ import annotations

import socket

import httpx

from cartero_common.metrics import serve_metrics
from tests.support import free_port


def test_port_zero_means_no_endpoint_and_a_taken_port_is_not_fatal() -> None:
    assert serve_metrics(0, host="127.0.0.1") is False
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve_metrics(taken.getsockname()[1], host="127.0.0.1") is False


def test_a_free_port_serves_the_consumer_metrics() -> None:
    port = free_port()
    assert serve_metrics(port, host="127.0.0.1") is True
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE consumer_messages_total counter" in body
    assert "# TYPE consumer_processing_seconds histogram" in body
