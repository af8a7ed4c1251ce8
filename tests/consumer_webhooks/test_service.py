"""`python -m consumer_webhooks` as its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.consumers import start_consumer, wait_consuming
from tests.support import ROOT, consumer_count, free_port, isolated_vhost, python_env, stop_process, wait_until

WEBHOOKS_KEY = "webhooks-key-for-tests-0123456789"


def test_it_refuses_to_start_without_its_validator_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumer_webhooks"],
        cwd=ROOT,
        env=python_env(VALIDATOR_WEBHOOKS_KEY="short", CONSUMER_WEBHOOKS_METRICS_PORT="0"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"VALIDATOR_WEBHOOKS_KEY must be set" in result.stderr


def test_it_consumes_both_queues_serves_metrics_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    with isolated_vhost("cartero-webhooks-process") as url:
        process = start_consumer(
            "consumer_webhooks",
            tmp_path / "consumer_webhooks.log",
            AMQP_URL=url,
            VALIDATOR_URL="http://127.0.0.1:9",
            VALIDATOR_WEBHOOKS_KEY=WEBHOOKS_KEY,
            CONSUMER_WEBHOOKS_METRICS_PORT=str(port),
            WEBHOOK_CONCURRENCY="3",
        )
        try:
            wait_consuming(url, "webhooks", process)
            wait_until(lambda: consumer_count(url, "webhook_deliveries") == 3, timeout=20, what="three workers")
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert "webhook_deliveries_total" in metrics and "webhook_delivery_seconds" in metrics
        finally:
            stop_process(process)
        assert process.returncode == 0, (tmp_path / "consumer_webhooks.log").read_text()
