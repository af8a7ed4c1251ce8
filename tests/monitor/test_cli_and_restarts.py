"""`python -m monitor` for operators (--once --dry-run, bad settings), and consumers that die."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from cartero_common.clock import FixedClock, system_clock
from monitor.decision import Policy
from monitor.events import EventPublisher
from monitor.loop import Monitor
from monitor.process_backend import ProcessBackend
from monitor.sources import AmqpDepth
from tests.monitor.helpers import LogsWatcher, consumers_on, publish_sms, queue_info
from tests.support import ROOT, isolated_vhost, python_env, wait_until


def monitor_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=ROOT,
        env=python_env(MONITOR_METRICS_PORT="0", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
def test_once_dry_run_prints_what_it_would_do_and_does_nothing() -> None:
    with isolated_vhost("cartero-monitor-cli") as url:
        publish_sms(url, 12_345)
        result = monitor_cli("--once", "--dry-run", AMQP_URL=url)
        assert result.returncode == 0, result.stderr
        assert (
            "cola_sms: 12345 messages (12345 ready, unacked not visible); wants 2; running 0; "
            "target 2 (up): would start 2"
        ) in result.stdout
        assert consumers_on(url) == 0
        with pytest.raises(Exception, match="NOT_FOUND"):
            queue_info(url, "logs")  # no event was published (nobody even declared `logs`)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MONITOR_MIN": "5", "MONITOR_MAX": "2"}, "MONITOR_MAX (2) is below MONITOR_MIN (5)"),
        ({"MONITOR_SOURCE": "kafka"}, "monitor_source"),
        ({"MONITOR_THRESHOLD_PER_CONSUMER": "0"}, "monitor_threshold_per_consumer"),
        ({"MONITOR_CONSUMER": "consumer_sms; rm -rf /"}, "monitor_consumer"),
    ],
)
def test_bad_settings_are_refused_clearly(env: dict[str, str], message: str) -> None:
    result = monitor_cli("--once", "--dry-run", **env)
    assert result.returncode == 2
    assert "invalid settings" in result.stderr and message in result.stderr


def test_once_needs_dry_run_with_local_processes() -> None:
    result = monitor_cli("--once", MONITOR_BACKEND="process")
    assert result.returncode == 2
    assert "--once without --dry-run needs the docker backend" in result.stderr


@pytest.mark.integration
def test_a_consumer_that_dies_is_reported_and_replaced_after_a_pause() -> None:
    with isolated_vhost("cartero-monitor-crash") as url, LogsWatcher(url) as logs:
        publish_sms(url, 1)
        clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
        # A "consumer" that fails at start-up, as one with a bad configuration would.
        backend = ProcessBackend(
            command=[sys.executable, "-c", "import sys; sys.exit(3)"],
            env=python_env(),
            consumer="consumer_sms",
            grace=5,
            port_env="CONSUMER_SMS_METRICS_PORT",
        )
        monitor = Monitor(
            queue="cola_sms",
            source=AmqpDepth(url, "cola_sms"),
            backend=backend,
            events=EventPublisher(url, clock=clock),
            policy=Policy(threshold=100, minimum=1, maximum=3, stabilization=timedelta(seconds=60)),
            clock=clock,
            timezone="Europe/Madrid",
        )
        try:
            first = monitor.tick()
            assert first is not None and len(first.started) == 1
            wait_until(lambda: not backend.running(), timeout=10, what="the crash")

            clock.set(clock() + timedelta(seconds=1))
            paused = monitor.tick()  # the exit is reported; no restart for 5 s
            assert paused is not None and paused.running == 0 and not paused.started

            clock.set(clock() + timedelta(seconds=5))
            again = monitor.tick()
            assert again is not None and len(again.started) == 1
            wait_until(lambda: not backend.running(), timeout=10, what="the second crash")

            clock.set(clock() + timedelta(seconds=6))
            longer = monitor.tick()  # second failure in a row: a 10 s pause now
            assert longer is not None and not longer.started
        finally:
            monitor.shutdown()
        wait_until(lambda: len(logs.of("eliminacion")) == 2, timeout=10, what="two eliminacion events")
        assert [(e["evento"], e["replicas"]) for e in logs.of("creacion", "eliminacion")] == [
            ("creacion", 1),
            ("eliminacion", 0),
            ("creacion", 1),
            ("eliminacion", 0),
        ]


@pytest.mark.integration
def test_a_consumer_command_that_cannot_run_is_a_backend_error() -> None:
    with isolated_vhost("cartero-monitor-nocmd") as url:
        publish_sms(url, 1)
        backend = ProcessBackend(
            command=["/nonexistent/consumer"], env={}, consumer="consumer_sms", grace=1, port_env="PORT"
        )
        events = EventPublisher(url, clock=FixedClock(datetime(2026, 7, 1, tzinfo=UTC)))
        monitor = Monitor(
            queue="cola_sms",
            source=AmqpDepth(url, "cola_sms"),
            backend=backend,
            events=events,
            policy=Policy(threshold=100, minimum=1, maximum=3, stabilization=timedelta(0)),
            clock=system_clock,
            timezone="Europe/Madrid",
        )
        before = REGISTRY.get_sample_value("monitor_backend_errors_total", {"queue": "cola_sms"}) or 0.0
        tick = monitor.tick()
        assert tick is not None and tick.decision.target == 1 and not tick.started
        assert tick.error is not None and "cannot start" in tick.error
        assert REGISTRY.get_sample_value("monitor_backend_errors_total", {"queue": "cola_sms"}) == before + 1
        monitor.shutdown()
