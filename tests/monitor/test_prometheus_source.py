"""The `prometheus` depth source against a real Prometheus scraping the real RabbitMQ, and what the
monitor does when Prometheus goes away (it holds)."""

from __future__ import annotations

import sys
from datetime import timedelta

import pika
import pytest
from prometheus_client import REGISTRY

from cartero_common.clock import system_clock
from monitor.decision import Policy
from monitor.events import EventPublisher
from monitor.loop import Monitor
from monitor.process_backend import ProcessBackend
from monitor.sources import AmqpDepth, Depth, PrometheusDepth, SourceError
from tests.monitor.conftest import Prometheus
from tests.monitor.helpers import LogsWatcher, consumers_on, publish_sms
from tests.support import ROOT, free_port, isolated_vhost, python_env, wait_until

pytestmark = pytest.mark.integration


def vhost_of(url: str) -> str:
    return str(pika.URLParameters(url).virtual_host)


def test_ready_plus_unacked_of_its_own_vhost_only(prometheus: Prometheus) -> None:
    with isolated_vhost("cartero-prom-a") as url_a, isolated_vhost("cartero-prom-b") as url_b:
        publish_sms(url_a, 300)
        publish_sms(url_b, 7)  # the same queue name in another vhost: must not be counted
        # 100 messages delivered and never acked: in flight, as on a busy consumer.
        holder = pika.BlockingConnection(pika.URLParameters(url_a))
        try:
            channel = holder.channel()
            channel.basic_qos(prefetch_count=100)
            channel.basic_consume("cola_sms", lambda *_: None, auto_ack=False)
            holder.process_data_events(time_limit=1)

            source_a = PrometheusDepth(prometheus.url, "cola_sms", vhost_of(url_a))
            source_b = PrometheusDepth(prometheus.url, "cola_sms", vhost_of(url_b))
            # RabbitMQ refreshes its queue metrics every few seconds; Prometheus scrapes every second.
            wait_until(lambda: source_a.read() == Depth(200, 100, None), timeout=30, what="300 in vhost a")
            assert source_a.read().messages == 300
            wait_until(lambda: source_b.read() == Depth(7, 0, None), timeout=30, what="7 in vhost b")
            # Passive declare sees the ready ones and the consumer, not the 100 in flight.
            assert AmqpDepth(url_a, "cola_sms").read() == Depth(ready=200, unacked=None, consumers=1)
        finally:
            holder.close()

        missing = PrometheusDepth(prometheus.url, "cola_sms", "no-such-vhost")
        with pytest.raises(SourceError, match="has no rabbitmq_queue_messages"):
            missing.read()


def test_unreachable_prometheus_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="unreachable"):
        PrometheusDepth(f"http://127.0.0.1:{free_port()}", "cola_sms", "/", timeout=2).read()


def test_monitor_holds_its_consumers_while_prometheus_is_down(prometheus: Prometheus) -> None:
    with isolated_vhost("cartero-prom-hold") as url, LogsWatcher(url) as logs:
        publish_sms(url, 150)
        source = PrometheusDepth(prometheus.url, "cola_sms", vhost_of(url))
        wait_until(lambda: source.read().messages == 150, timeout=30, what="Prometheus sees 150")
        backend = ProcessBackend(
            command=[sys.executable, "-m", "consumer_sms"],
            env=python_env(AMQP_URL=url, LOG_LEVEL="WARNING"),
            consumer="consumer_sms",
            grace=10,
            port_env="CONSUMER_SMS_METRICS_PORT",
            port_base=0,
            cwd=str(ROOT),
        )
        # No stabilization: with a working source, an empty queue would mean 1 consumer at once.
        policy = Policy(threshold=100, minimum=1, maximum=5, stabilization=timedelta(0))
        monitor = Monitor(
            queue="cola_sms",
            source=source,
            backend=backend,
            events=EventPublisher(url, clock=system_clock),
            policy=policy,
            clock=system_clock,
            timezone="Europe/Madrid",
        )
        try:
            first = monitor.tick()
            assert first is not None and first.decision.target == 2 and len(first.started) == 2
            wait_until(lambda: len(logs.consumed_ids()) == 150, timeout=30, what="150 consumed")
            wait_until(lambda: source.read().messages == 0, timeout=30, what="Prometheus sees the queue empty")

            prometheus.stop()
            errors = REGISTRY.get_sample_value("monitor_source_errors_total", {"queue": "cola_sms"}) or 0.0
            held = monitor.tick()
            assert held is not None
            assert held.decision.reason == "source_error"
            assert held.decision.target == 2 and held.running == 2
            assert not held.started and not held.stopped
            assert held.error is not None and "Prometheus unreachable" in held.error
            assert REGISTRY.get_sample_value("monitor_source_errors_total", {"queue": "cola_sms"}) == errors + 1
            assert len(backend.running()) == 2
            assert consumers_on(url) == 2
        finally:
            monitor.shutdown()
        wait_until(lambda: len(logs.of("eliminacion")) == 2, timeout=10, what="eliminacion events")
        assert [e["replicas"] for e in logs.of("creacion")] == [1, 2]
        assert [e["replicas"] for e in logs.of("eliminacion")] == [1, 0]
        assert consumers_on(url) == 0
