"""`python -m consumer_webhooks` as its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pika

from cartero_common.amqp.topology import RetryPolicy
from consumer_webhooks.__main__ import delivery_policy, loops
from consumer_webhooks.config import Settings
from consumer_webhooks.endpoints import HttpEndpointDirectory
from tests.consumers import start_consumer, wait_consuming
from tests.support import (
    ROOT,
    consumer_count,
    free_port,
    isolated_vhost,
    python_env,
    queue_depth,
    stop_process,
    wait_until,
)

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


def test_the_fan_out_retries_as_long_as_the_deliveries() -> None:
    """A validator away for hours must not dead-letter the notifications: the `webhooks` loop
    waits out the same schedule as the deliveries (about 25.6 h by default)."""
    settings = Settings(validator_webhooks_key=WEBHOOKS_KEY, webhook_concurrency=2)
    directory = HttpEndpointDirectory("http://127.0.0.1:9", WEBHOOKS_KEY, cache_seconds=0)
    shorter = Settings(validator_webhooks_key=WEBHOOKS_KEY, webhook_retry_delays="1s,2s")
    with httpx.Client() as client:
        fan, *workers = loops(settings, directory, client)
        short_fan, *_ = loops(shorter, directory, client)
    directory.close()
    policy = delivery_policy(settings)
    assert fan.queue == "webhooks" and fan.policy == policy
    assert [w.policy for w in workers] == [policy, policy]
    waited = sum(policy.delay_after(n) for n in range(1, policy.max_attempts))
    assert waited >= 24 * 3600, f"{waited / 3600:.1f} h"
    assert short_fan.policy == RetryPolicy(max_attempts=3, delays=(1.0, 2.0))


def notifications_dead_lettered(url: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare("webhooks.dlq", durable=True)
        for n in range(count):
            props = pika.BasicProperties(delivery_mode=2, message_id=f"evt_{n}")
            channel.basic_publish("", "webhooks.dlq", json.dumps({"n": n}).encode(), props)
    finally:
        connection.close()


def test_replay_dlq_moves_either_queues_dead_letters() -> None:
    with isolated_vhost("cartero-webhooks-replay") as url:
        notifications_dead_lettered(url, 2)
        env = python_env(AMQP_URL=url, VALIDATOR_WEBHOOKS_KEY=WEBHOOKS_KEY)
        command = [sys.executable, "-m", "consumer_webhooks", "replay-dlq"]
        result = subprocess.run([*command, "--queue", "webhooks"], cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert b"moved 2 message(s) from webhooks.dlq to webhooks" in result.stdout
        assert (queue_depth(url, "webhooks"), queue_depth(url, "webhooks.dlq")) == (2, 0)
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert b"moved 0 message(s) from webhook_deliveries.dlq to webhook_deliveries" in result.stdout
        result = subprocess.run([*command, "--queue", "logs"], cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert result.returncode == 2 and b"invalid choice" in result.stderr
