"""consumer_sms as a real process (`python -m consumer_sms`, settings from the environment):
SIGKILL between the send and the ack, SIGTERM with work in flight, broker drops, metrics,
replaying dead letters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.consumers import FAST_DELAYS, Gateway, close_connections, publish, sms, start_consumer, wait_consuming
from tests.support import ROOT, drain, free_port, isolated_vhost, python_env, queue_depth, stop_process, wait_until


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-sms-proc") as found:
        yield found


def env_for(url: str, tmp_path: Path, gateway: Gateway, **extra: str) -> dict[str, str]:
    return {
        "AMQP_URL": url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/consumer_sms.db",
        "SMS_PROVIDER": "http",
        "SMS_GATEWAY_URL": gateway.url,
        "SMS_GATEWAY_TIMEOUT": "5",
        "CONSUMER_SMS_METRICS_PORT": "0",
        "CONSUMER_RETRY_DELAYS": FAST_DELAYS,
        "CONSUMER_MAX_ATTEMPTS": "3",
        **extra,
    }


def test_sigkill_after_the_send_before_the_ack_does_not_send_again(url: str, tmp_path: Path) -> None:
    log = tmp_path / "consumer.log"
    with Gateway() as gateway:
        # The first process holds every ack for a minute: the window we kill it in.
        first = start_consumer(
            "consumer_sms", log, **env_for(url, tmp_path, gateway, CONSUMER_PAUSE_BEFORE_ACK_SECONDS="60")
        )
        try:
            wait_consuming(url, "cola_sms", first)
            publish(url, "cola_sms", sms("crash-1"))
            wait_until(lambda: gateway.calls_for("crash-1") == 1, timeout=10, what="the gateway call")
            # `consumido` is published after the ledger commit and confirmed before the ack.
            wait_until(lambda: queue_depth(url, "logs") == 1, timeout=10, what="the consumido event")
            assert queue_depth(url, "cola_sms") == 0  # in flight: delivered, not acked
        finally:
            first.kill()  # SIGKILL: no cleanup at all
            first.wait(10)
        wait_until(lambda: queue_depth(url, "cola_sms") == 1, timeout=10, what="the broker taking it back")

        second = start_consumer("consumer_sms", log, **env_for(url, tmp_path, gateway))
        try:
            wait_until(lambda: queue_depth(url, "logs") == 2, timeout=20, what="the redelivery settled")
        finally:
            stop_process(second)
        assert second.returncode == 0
        assert gateway.calls_for("crash-1") == 1  # redelivered, not sent again
        assert queue_depth(url, "cola_sms") == 0  # and this time acked
    first_event, second_event = (body for _, body in drain(url, "logs"))
    assert first_event == second_event  # byte for byte: consumer_logs stores it once
    assert "already delivered before; not sent again" in log.read_text()


def test_sigkill_with_batches_unacked_sends_each_sms_once_and_loses_none(url: str, tmp_path: Path) -> None:
    """The log provider takes batches and commits the ledger once per batch: a crash after the
    commits, with every ack still held, costs redeliveries that are all recognised."""
    log = tmp_path / "consumer.log"
    env = {
        "AMQP_URL": url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/consumer_sms.db",
        "SMS_PROVIDER": "log",
        "CONSUMER_SMS_METRICS_PORT": "0",
        "CONSUMER_SMS_PREFETCH": "50",
        "CONSUMER_BATCH_SIZE": "4",
    }
    ids = [f"batch-{n}" for n in range(10)]
    for message_id in ids:
        publish(url, "cola_sms", sms(message_id))
    first = start_consumer("consumer_sms", log, **env, CONSUMER_PAUSE_BEFORE_ACK_SECONDS="60")
    try:
        wait_until(lambda: queue_depth(url, "logs") == len(ids), timeout=20, what="every consumido event")
    finally:
        first.kill()
        first.wait(10)
    wait_until(lambda: queue_depth(url, "cola_sms") == len(ids), timeout=10, what="the broker taking all back")

    second = start_consumer("consumer_sms", log, **env)
    try:
        wait_until(lambda: queue_depth(url, "logs") == 2 * len(ids), timeout=20, what="the redeliveries settled")
        wait_until(lambda: queue_depth(url, "cola_sms") == 0, timeout=10, what="all acked")
    finally:
        stop_process(second)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    sent = sorted(line["id"] for line in lines if line["msg"] == "sms sent")
    assert sent == sorted(ids)  # each SMS sent once, none lost
    duplicates = sorted(line["id"] for line in lines if line["msg"] == "already delivered before; not sent again")
    assert duplicates == sorted(ids)
    found: dict[str, list[bytes]] = {}
    for _, body in drain(url, "logs"):
        found.setdefault(json.loads(body)["id"], []).append(body)
    assert sorted(found) == sorted(ids)
    assert all(len(bodies) == 2 and bodies[0] == bodies[1] for bodies in found.values())


def test_sigterm_finishes_the_message_in_hand_and_leaves_the_rest(url: str, tmp_path: Path) -> None:
    with Gateway(delay=1.0) as gateway:
        process = start_consumer(
            "consumer_sms", tmp_path / "consumer.log", **env_for(url, tmp_path, gateway, CONSUMER_SMS_PREFETCH="10")
        )
        try:
            wait_consuming(url, "cola_sms", process)
            for n in range(5):
                publish(url, "cola_sms", sms(f"t{n}"))
            assert gateway.received.wait(10)
            stopped_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
            assert time.monotonic() - stopped_at < 5
        finally:
            stop_process(process)
        assert [r["body"]["id"] for r in gateway.requests] == ["t0"]
    assert queue_depth(url, "logs") == 1  # t0's consumido
    left = sorted(json.loads(body)["id"] for _, body in drain(url, "cola_sms"))
    assert left == ["t1", "t2", "t3", "t4"]  # back in the queue, nothing lost


def test_two_processes_one_host_survive_a_broker_drop(url: str, tmp_path: Path) -> None:
    port = free_port()
    with Gateway() as gateway:
        env = env_for(url, tmp_path, gateway)
        scraped = start_consumer("consumer_sms", tmp_path / "a.log", **{**env, "CONSUMER_SMS_METRICS_PORT": str(port)})
        unscraped = start_consumer("consumer_sms", tmp_path / "b.log", **env)  # port 0: no endpoint
        try:
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).is_success, timeout=20)
            wait_consuming(url, "cola_sms", unscraped)
            wait_until(lambda: close_connections(url, "consumer_sms@") == 2, timeout=20, what="two connections")
            for n in range(10):
                publish(url, "cola_sms", sms(f"d{n}"))
            wait_until(lambda: len(gateway.requests) >= 10, timeout=30, what="all ten sent after the drop")
            stop_process(unscraped)  # the rest must go through the scraped one
            for n in range(10, 13):
                publish(url, "cola_sms", sms(f"d{n}"))
            wait_until(lambda: queue_depth(url, "logs") == 13, timeout=10, what="thirteen events")
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        finally:
            stop_process(scraped)
            stop_process(unscraped)
        assert sorted(r["body"]["id"] for r in gateway.requests) == sorted(f"d{n}" for n in range(13))
    assert scraped.returncode == 0 and unscraped.returncode == 0
    assert 'consumer_messages_total{outcome="consumido",queue="cola_sms"}' in metrics
    assert "consumer_processing_seconds_bucket" in metrics
    assert "consumer_retries_total" in metrics and "consumer_dead_letters_total" in metrics


def replay(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer_sms", "replay-dlq", *args],
        cwd=ROOT,
        env=python_env(AMQP_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_replay_moves_dead_letters_back_and_they_are_delivered(url: str, tmp_path: Path) -> None:
    with Gateway([400, 400, 400]) as gateway:
        process = start_consumer("consumer_sms", tmp_path / "consumer.log", **env_for(url, tmp_path, gateway))
        try:
            wait_consuming(url, "cola_sms", process)
            for n in range(3):
                publish(url, "cola_sms", sms(f"r{n}"))
            wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 3, timeout=15, what="three dead letters")
            first = replay(url, "--limit", "2")
            assert first.returncode == 0, first.stderr
            assert "moved 2 message(s) from cola_sms.dlq to cola_sms" in first.stdout
            wait_until(lambda: len(gateway.requests) == 5, timeout=15, what="two replayed and sent")
            assert queue_depth(url, "cola_sms.dlq") == 1
            rest = replay(url)
            assert "moved 1 message(s)" in rest.stdout
            wait_until(lambda: len(gateway.requests) == 6, timeout=15, what="the last one sent")
            wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 0, timeout=5, what="an empty DLQ")
        finally:
            stop_process(process)
    delivered = [r["body"]["id"] for r in gateway.requests[3:]]
    assert sorted(delivered) == ["r0", "r1", "r2"]


def test_replay_shows_progress_for_large_counts(url: str) -> None:
    for n in range(150):
        publish(url, "cola_sms.dlq", sms(f"bulk{n}"))
    result = replay(url)
    assert result.returncode == 0, result.stderr
    assert "moved 150 message(s)" in result.stdout
    assert "150/150" in result.stderr  # the progress bar
    assert queue_depth(url, "cola_sms") == 150
    assert replay(url, "--limit", "-1").returncode == 2
