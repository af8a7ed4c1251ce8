"""The monitor's own image, as compose runs it: supervisord with `monitor_sms` and `monitor_email`,
the docker backend reaching the engine over DOCKER_HOST=tcp://, consumers started as containers."""

from __future__ import annotations

import docker
import docker.errors
import httpx
import pytest

from cartero_common.containers import MONITOR, QUEUE
from monitor.docker_backend import DockerBackend
from tests.monitor.conftest import CACHE_TAG
from tests.monitor.helpers import LogsWatcher, metric_value, publish_sms
from tests.support import ROOT, free_port, isolated_vhost, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.integration]

MONITOR_IMAGE = "cartero-test/monitor:latest"


def build_monitor_image(client: docker.DockerClient) -> None:
    """Build (mostly from cache) and drop the image it replaces, so reruns leave no dangling layers."""
    try:
        previous: str | None = client.images.get(MONITOR_IMAGE).id
    except docker.errors.ImageNotFound:
        previous = None
    image, _ = client.images.build(
        path=str(ROOT), target="monitor", tag=MONITOR_IMAGE, rm=True, forcerm=True, timeout=900
    )
    if previous is not None and previous != image.id:
        try:
            client.images.remove(previous)
        except docker.errors.APIError:
            pass  # still in use: it stays


def test_monitor_container_scales_consumer_containers(
    docker_client: docker.DockerClient, engine_over_tcp: str, run_id: str
) -> None:
    # The consumer image: last run's build when there is one, else built now.
    consumer_image = DockerBackend(
        client=docker_client,
        image=CACHE_TAG,
        consumer="consumer_sms",
        queue="cola_sms",
        monitor="unused",
        env={},
        grace=1,
        port_env="X",
        build_context=ROOT,
    )
    consumer_image.ensure_image()
    build_monitor_image(docker_client)

    with isolated_vhost("cartero-monitor-image") as url, LogsWatcher(url) as logs:
        publish_sms(url, 150)
        sms_port, email_port = free_port(), free_port()
        container = docker_client.containers.run(
            MONITOR_IMAGE,
            detach=True,
            network_mode="host",
            labels={"cartero.test-run": run_id},
            environment={
                "AMQP_URL": url,
                "DOCKER_HOST": engine_over_tcp,
                "MONITOR_SOURCE": "amqp",
                "MONITOR_NAME": f"test-{run_id}",
                "MONITOR_THRESHOLD_PER_CONSUMER": "100",
                "MONITOR_INTERVAL": "1",
                "MONITOR_DOCKER_NETWORK": "host",
                # Per queue: MONITOR_SMS_* wins over MONITOR_* for monitor_sms only.
                "MONITOR_MAX": "1",
                "MONITOR_SMS_MAX": "2",
                "MONITOR_SMS_DOCKER_IMAGE": CACHE_TAG,
                "MONITOR_SMS_METRICS_PORT": str(sms_port),
                "MONITOR_EMAIL_METRICS_PORT": str(email_port),
                # Host networking: the consumers share the host's ports, so let each pick a free one.
                "MONITOR_SMS_REPLICA_PORT_BASE": "0",
                "MONITOR_EMAIL_REPLICA_PORT_BASE": "0",
            },
        )
        ours = {"label": [f"{MONITOR}=test-{run_id}", f"{QUEUE}=cola_sms"]}
        try:
            wait_until(lambda: len(docker_client.containers.list(filters=ours)) == 2, timeout=60, what="2 consumers")
            wait_until(lambda: len(logs.consumed_ids()) == 150, timeout=60, what="150 consumed")
            assert [e["replicas"] for e in logs.of("creacion")] == [1, 2]

            sms = httpx.get(f"http://127.0.0.1:{sms_port}/metrics", timeout=5).text
            assert metric_value(sms, "monitor_scale_events_total", queue="cola_sms", direction="up") == 2
            # The email consumer's image is not there and the monitor image holds no Dockerfile to
            # build it from: monitor_email says so and keeps running, starting nothing.
            email = httpx.get(f"http://127.0.0.1:{email_port}/metrics", timeout=5).text
            errors = metric_value(email, "monitor_backend_errors_total", queue="correos")
            assert errors is not None and errors >= 1
            assert metric_value(email, "monitor_replicas", queue="correos", kind="running") == 0
        finally:
            container.stop(timeout=30)
            container.reload()
            output = container.logs().decode(errors="replace")
        assert container.attrs["State"]["ExitCode"] == 0, output[-3000:]
        assert "no Dockerfile (target consumer_email)" in output
        # Containers outlive their monitor: a new one adopts them.
        assert len(docker_client.containers.list(filters=ours)) == 2
