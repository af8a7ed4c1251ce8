from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from tests.support import RABBIT_HOST, container_engine, free_port, unavailable, wait_until

RABBIT_METRICS = f"{RABBIT_HOST}:15692"


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _port_open(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """A real Prometheus on a free port, scraping the machine's RabbitMQ per-object metrics every
    second (the broker's own configuration is left alone: the endpoint is asked for by path)."""
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("the prometheus binary (Debian package 'prometheus'; local/install-test-deps.sh)")
    if not _port_open(RABBIT_METRICS):
        unavailable(f"RabbitMQ's Prometheus endpoint at {RABBIT_METRICS} (rabbitmq-plugins enable rabbitmq_prometheus)")
    assert binary is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: rabbitmq\n"
        "    metrics_path: /metrics/per-object\n"
        "    static_configs:\n"
        f"      - targets: ['{RABBIT_METRICS}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}", process)
    try:
        wait_until(lambda: httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200, timeout=30, what="ready")
        yield server
    finally:
        server.stop()
        log.close()


@pytest.fixture(scope="session")
def docker_host() -> str:
    """The Docker-API engine's DOCKER_HOST, set up once per session."""
    return container_engine()


@pytest.fixture
def docker_client(docker_host: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_host, timeout=120)
    yield client
    client.close()


CACHE_REPOSITORY, CACHE_VERSION = "cartero-test/consumer_sms", "cache"
CACHE_TAG = f"{CACHE_REPOSITORY}:{CACHE_VERSION}"


@pytest.fixture
def consumer_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """A consumer_sms image tag that does not exist yet, so the backend has to build it.

    The build reuses the layers of the previous run, kept under CACHE_TAG: removing the only tag
    of an image would delete its layers, and every run would reinstall the dependencies.
    """
    tag = f"cartero-test/consumer_sms:run-{uuid.uuid4().hex[:8]}"
    yield tag
    try:
        built = docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        return
    try:
        previous = docker_client.images.get(CACHE_TAG)
    except docker.errors.ImageNotFound:
        previous = None
    built.tag(CACHE_REPOSITORY, CACHE_VERSION)
    docker_client.images.remove(tag)
    if previous is not None and previous.id != built.id:
        previous.reload()
        if not [t for t in previous.tags if t != CACHE_TAG]:
            try:
                docker_client.images.remove(previous.id)
            except docker.errors.APIError:
                pass  # still used by something: it stays


@pytest.fixture
def engine_over_tcp(docker_host: str) -> Iterator[str]:
    """The same engine also served on tcp://127.0.0.1:<free port>, as a socket proxy would serve it."""
    podman = shutil.which("podman")
    if podman is None:
        unavailable("podman, to serve the engine over TCP (installed by the container-engine script)")
    assert podman is not None
    port = free_port()
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"tcp://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/_ping", timeout=1).text == "OK", timeout=20, what=url)
        yield url
    finally:
        service.terminate()
        service.wait(15)


@pytest.fixture
def run_id(docker_client: docker.DockerClient) -> Iterator[str]:
    """Names this run's monitor; every container of the run is removed afterwards."""
    run = uuid.uuid4().hex[:8]
    yield run
    for container in docker_client.containers.list(all=True, filters={"label": f"cartero.test-run={run}"}):
        container.remove(force=True)
    for container in docker_client.containers.list(all=True, filters={"label": f"cartero.monitor=test-{run}"}):
        container.remove(force=True)
