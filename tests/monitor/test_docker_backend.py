"""The docker backend against a real Docker-API engine, with the real consumer image built from
`consumer_sms/Dockerfile`, consuming from the machine's RabbitMQ on an isolated vhost."""

from __future__ import annotations

from datetime import timedelta

import docker
import docker.errors
import pytest

from cartero_common.clock import system_clock
from cartero_common.containers import CONSUMER, MONITOR, QUEUE, ROLE, SLOT
from monitor.backend import BackendError
from monitor.decision import Policy
from monitor.docker_backend import DockerBackend
from monitor.events import EventPublisher
from monitor.loop import Monitor
from monitor.sources import AmqpDepth
from tests.monitor.helpers import LogsWatcher, consumers_on, publish_sms
from tests.support import ROOT, free_port, isolated_vhost, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.integration]

BASE_IMAGE = "docker.io/library/python:3.11-slim"
SLEEPER = ["python", "-c", "import time; time.sleep(600)"]
GRACE = 10.0


def make_backend(client: docker.DockerClient, *, image: str, run: str, url: str) -> DockerBackend:
    return DockerBackend(
        client=client,
        image=image,
        consumer="consumer_sms",
        queue="cola_sms",
        monitor=f"test-{run}",
        env={"AMQP_URL": url, "TIMEZONE": "Europe/Madrid", "LOG_LEVEL": "WARNING"},
        grace=GRACE,
        port_env="CONSUMER_SMS_METRICS_PORT",
        port_base=0,
        network="host",
        build_context=ROOT,
    )


def test_scales_by_label_builds_the_image_and_stops_gracefully(
    docker_client: docker.DockerClient, consumer_image: str, run_id: str
) -> None:
    with isolated_vhost("cartero-docker") as url, LogsWatcher(url) as logs:
        publish_sms(url, 150)
        # Not ours: one container without labels, one labelled for another monitor of this queue.
        test_label = {"cartero.test-run": run_id}
        unlabelled = docker_client.containers.run(BASE_IMAGE, SLEEPER, detach=True, labels=test_label)
        other = docker_client.containers.run(
            BASE_IMAGE,
            SLEEPER,
            detach=True,
            labels={**test_label, ROLE: "consumer", QUEUE: "cola_sms", MONITOR: f"other-{run_id}"},
        )
        backend = make_backend(docker_client, image=consumer_image, run=run_id, url=url)
        monitor = Monitor(
            queue="cola_sms",
            source=AmqpDepth(url, "cola_sms"),
            backend=backend,
            events=EventPublisher(url, clock=system_clock),
            policy=Policy(threshold=100, minimum=1, maximum=3, stabilization=timedelta(0)),
            clock=system_clock,
            timezone="Europe/Madrid",
        )
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(consumer_image)

        up = monitor.tick()  # 150 messages, 100 per consumer: 0 → 2, building the image first
        assert up is not None and up.running == 0 and len(up.started) == 2, up
        docker_client.images.get(consumer_image)
        ours = docker_client.containers.list(filters={"label": f"{MONITOR}=test-{run_id}"})
        assert sorted(c.name for c in ours) == sorted(up.started)
        assert sorted(c.labels[SLOT] for c in ours) == ["0", "1"]
        for container in ours:
            assert container.labels[ROLE] == "consumer"
            assert container.labels[QUEUE] == "cola_sms"
            assert container.labels[CONSUMER] == "consumer_sms"
            assert f"AMQP_URL={url}" in container.attrs["Config"]["Env"]
            assert container.attrs["Config"]["User"] == "10001:10001"

        # The consumers in the containers reach the host's broker and drain the queue.
        wait_until(lambda: len(logs.consumed_ids()) == 150, timeout=60, what="150 consumed in containers")
        wait_until(lambda: consumers_on(url) == 2, timeout=10, what="2 consumers attached")

        down = monitor.tick()  # empty queue, no stabilization: 2 → 1, the newest one goes
        assert down is not None and down.decision.target == 1 and len(down.stopped) == 1
        stopped = down.stopped[0]
        newest = next(c.name for c in ours if c.labels[SLOT] == "1")
        assert stopped.name == newest
        # SIGTERM, and the consumer exits by itself (0) well inside the grace period.
        assert stopped.exit_code == 0 and not stopped.killed and stopped.seconds < GRACE, stopped
        remaining = docker_client.containers.list(all=True, filters={"label": f"{MONITOR}=test-{run_id}"})
        assert [c.labels[SLOT] for c in remaining] == ["0"]
        assert consumers_on(url) == 1

        # Containers it did not label are untouched.
        for container in (unlabelled, other):
            container.reload()
            assert container.status == "running"

        monitor.shutdown()  # containers outlive the monitor; the next one adopts them
        assert [r.slot for r in make_backend(docker_client, image=consumer_image, run=run_id, url=url).running()] == [0]

        wait_until(lambda: len(logs.of("eliminacion")) == 1, timeout=10, what="the eliminacion event")
        assert [(e["contenedor"], e["replicas"]) for e in logs.of("creacion")] == [
            (up.started[0], 1),
            (up.started[1], 2),
        ]
        assert [(e["contenedor"], e["replicas"]) for e in logs.of("eliminacion")] == [(newest, 1)]


def test_docker_host_over_tcp(
    docker_client: docker.DockerClient, engine_over_tcp: str, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DOCKER_HOST=tcp://… (as through a socket proxy) counts the same containers by label."""
    labels = {"cartero.test-run": run_id, ROLE: "consumer", QUEUE: "cola_sms", MONITOR: f"test-{run_id}", SLOT: "0"}
    docker_client.containers.run(BASE_IMAGE, SLEEPER, detach=True, labels=labels, name=f"cartero-tcp-{run_id}")
    kwargs = {"image": "unused", "consumer": "consumer_sms", "queue": "cola_sms", "monitor": f"test-{run_id}"}
    monkeypatch.setenv("DOCKER_HOST", engine_over_tcp)
    backend = DockerBackend.from_env(env={}, grace=1, port_env="X", **kwargs)
    assert [(r.name, r.slot) for r in backend.running()] == [(f"cartero-tcp-{run_id}", 0)]

    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(BackendError, match="no Docker engine at DOCKER_HOST"):
        DockerBackend.from_env(env={}, grace=1, port_env="X", **kwargs)
