"""`python -m monitor` with the process backend and the AMQP source, against the real broker:
a 25,000-message backlog → 3 consumers → drained → back to the minimum, every change on `logs`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.monitor.helpers import LogsWatcher, consumers_on, free_port_range, metric_value, publish_sms
from tests.support import ROOT, free_port, isolated_vhost, python_env, wait_until

pytestmark = pytest.mark.integration

MESSAGES = 25_000
INTERVAL = 1.0
WINDOW = 5.0
GRACE = 10.0


def test_backlog_scales_up_drains_and_returns_to_min(tmp_path: Path) -> None:
    with isolated_vhost("cartero-monitor") as url, LogsWatcher(url) as logs:
        published = publish_sms(url, MESSAGES)
        metrics_port, replica_ports = free_port(), free_port_range(3)
        env = python_env(
            AMQP_URL=url,
            MONITOR_QUEUE="cola_sms",
            MONITOR_CONSUMER="consumer_sms",
            MONITOR_SOURCE="amqp",
            MONITOR_BACKEND="process",
            MONITOR_THRESHOLD_PER_CONSUMER="10000",
            MONITOR_MIN="1",
            MONITOR_MAX="10",
            MONITOR_INTERVAL=str(INTERVAL),
            MONITOR_STABILIZATION=str(WINDOW),
            MONITOR_GRACE=str(GRACE),
            MONITOR_METRICS_PORT=str(metrics_port),
            MONITOR_REPLICA_PORT_BASE=str(replica_ports),
            MONITOR_REPLICA_PORT_STEP="1",
            # The consumers' 25,000 "sms sent" lines would only slow the machine down.
            MONITOR_CONSUMER_ENV='{"LOG_LEVEL": "WARNING"}',
            LOG_LEVEL="INFO",
        )
        out = (tmp_path / "monitor.log").open("wb")
        started = time.monotonic()
        monitor = subprocess.Popen(
            [sys.executable, "-m", "monitor"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            # Up: all three at once, within one tick plus the consumers' start-up.
            wait_until(lambda: consumers_on(url) == 3, timeout=INTERVAL + 15, interval=0.05, what="3 consumers")
            scale_up = time.monotonic() - started
            # Each replica serves its metrics on its own port (base + slot).
            for port in range(replica_ports, replica_ports + 3):
                assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
            page = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            assert metric_value(page, "monitor_replicas", queue="cola_sms", kind="running") == 3
            assert metric_value(page, "monitor_scale_events_total", queue="cola_sms", direction="up") == 3

            wait_until(lambda: len(logs.consumed_ids()) >= MESSAGES, timeout=240, interval=0.2, what="drained")
            drained = logs.last_arrival("consumido") - started
            # Down: only once the window has seen nothing but small readings, to the minimum at last.
            wait_until(lambda: consumers_on(url) == 1, timeout=WINDOW + 4 * INTERVAL + GRACE, what="back to 1")
            # The consumer leaves the broker a moment before the monitor's event about it arrives.
            removed_at = wait_until(
                lambda: logs.arrival("eliminacion", replicas=1), timeout=10, what="eliminacion with 1 replica left"
            )
            back_to_min = removed_at - started
            page = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            assert metric_value(page, "monitor_replicas", queue="cola_sms", kind="running") == 1
            assert metric_value(page, "monitor_replicas", queue="cola_sms", kind="desired") == 1
            assert metric_value(page, "monitor_source_errors_total", queue="cola_sms") == 0
        finally:
            monitor.send_signal(signal.SIGTERM)
            code = monitor.wait(GRACE + 15)
            out.close()
        print(
            f"\nmonitor, process backend: {MESSAGES} messages; 3 consumers after {scale_up:.1f}s; "
            f"last message consumed after {drained:.1f}s; back to 1 consumer after {back_to_min:.1f}s"
        )
        assert code == 0, (tmp_path / "monitor.log").read_text()[-3000:]
        # The monitor took its last consumer with it.
        wait_until(lambda: consumers_on(url) == 0, timeout=5, what="no consumers left")
        wait_until(lambda: len(logs.of("eliminacion")) == 3, timeout=10, what="three eliminacion events")

        consumed = logs.consumed_ids()
        assert len(consumed) == MESSAGES  # nothing consumed twice …
        assert set(consumed) == set(published)  # … and nothing lost

        creacion, eliminacion = logs.of("creacion"), logs.of("eliminacion")
        assert [e["replicas"] for e in creacion] == [1, 2, 3]
        assert [e["replicas"] for e in eliminacion][-2:] == [1, 0]  # down to the minimum, then the exit
        assert len(eliminacion) == 3
        for event in creacion + eliminacion:
            assert set(event) == {"evento", "contenedor", "timestamp", "cola", "replicas"}
            assert event["cola"] == "cola_sms"
            assert event["contenedor"].startswith("consumer_sms-")
        assert {e["contenedor"] for e in eliminacion} == {e["contenedor"] for e in creacion}
        assert scale_up < INTERVAL + 15
