"""The gate (`python -m docker_gate`, a local process) in front of the real Docker-API engine: the
monitor's docker backend works through it, everything that would reach the host is refused and
leaves nothing behind, and Prometheus' real Docker discovery works through the list-only profile."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from cartero_common.containers import MONITOR
from monitor.docker_backend import DockerBackend
from tests.support import ROOT, container_engine, free_port, stop_process, unavailable, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.integration]

BASE_IMAGE = "docker.io/library/python:3.11-slim"
# A consumer stand-in: sleeps, and exits 0 on SIGTERM as a consumer does.
CONSUMER_IMAGE = "cartero-test/gate-consumer:1"
DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    'CMD ["python", "-c", "import signal, sys, time; '
    'signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); time.sleep(600)"]\n'
)


@dataclass
class Gate:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def refusals(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("msg") == "refused"]


@dataclass(frozen=True)
class Setup:
    engine: docker.DockerClient
    run: str
    network: str
    monitor: Gate
    discovery: Gate

    @property
    def monitor_name(self) -> str:
        return f"gate-test-{self.run}"

    def ours(self) -> list[Any]:
        """Every container of this run, asked of the engine directly, not through the gate."""
        return list(self.engine.containers.list(all=True, filters={"label": f"{MONITOR}={self.monitor_name}"}))

    def through(self, gate: Gate) -> docker.DockerClient:
        return docker.DockerClient(base_url=gate.url.replace("http://", "tcp://"), timeout=60)


def start_gate(tmp: Path, socket: str, profile: str, network: str) -> Gate:
    port = free_port()
    log = tmp / f"gate-{profile}.log"
    env = {
        **os.environ,
        "DOCKER_GATE_PROFILE": profile,
        "DOCKER_GATE_SOCKET": socket,
        "DOCKER_GATE_PORT": str(port),
        "DOCKER_GATE_IMAGES": CONSUMER_IMAGE,
        "DOCKER_GATE_NETWORK": network,
    }
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "docker_gate"], cwd=ROOT, env=env, stdout=out, stderr=out)
    gate = Gate(f"http://127.0.0.1:{port}", log, process)
    try:
        wait_until(lambda: httpx.get(f"{gate.url}/_ping", timeout=1).text == "OK", timeout=20, what=f"{profile} gate")
    except AssertionError:
        stop_process(process)
        raise AssertionError(f"the {profile} gate did not answer:\n{log.read_text()[-2000:]}") from None
    return gate


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    host = container_engine()
    if not host.startswith("unix://"):
        unavailable(f"the engine's unix socket (DOCKER_HOST is {host})")
    engine = docker.DockerClient(base_url=host, timeout=120)
    engine.images.build(fileobj=io.BytesIO(DOCKERFILE.encode()), tag=CONSUMER_IMAGE, rm=True, pull=False)
    run = uuid.uuid4().hex[:8]
    network = engine.networks.create(f"cartero-gate-{run}")
    tmp = tmp_path_factory.mktemp("gate")
    socket = host.removeprefix("unix://")
    gates = [start_gate(tmp, socket, "monitor", network.name)]
    try:
        gates.append(start_gate(tmp, socket, "discovery", network.name))
        yield Setup(engine, run, network.name, gates[0], gates[1])
    finally:
        for gate in gates:
            stop_process(gate.process)
        for container in engine.containers.list(all=True, filters={"label": f"{MONITOR}=gate-test-{run}"}):
            container.remove(force=True)
        network.remove()
        engine.close()


def consumer_labels(setup: Setup, slot: int = 0) -> dict[str, str]:
    return {
        "cartero.role": "consumer",
        "cartero.queue": "cola_sms",
        "cartero.monitor": setup.monitor_name,
        "cartero.consumer": "consumer_sms",
        "cartero.slot": str(slot),
    }


def test_the_monitors_docker_backend_works_through_the_gate(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", setup.monitor.url.replace("http://", "tcp://"))
    backend = DockerBackend.from_env(
        image=CONSUMER_IMAGE,
        consumer="consumer_sms",
        queue="cola_sms",
        monitor=setup.monitor_name,
        env={"AMQP_URL": "amqp://u:p@rabbitmq:5672/cartero", "LOG_LEVEL": "WARNING"},
        grace=10,
        port_env="CONSUMER_SMS_METRICS_PORT",
        network=setup.network,
        build_context=None,
    )
    assert backend.running() == []
    started = [backend.start(0), backend.start(1)]
    assert [r.slot for r in backend.running()] == [0, 1]
    on_engine = {c.name: c for c in setup.ours()}
    assert set(on_engine) == {r.name for r in started}
    for container in on_engine.values():
        assert container.status == "running"
        assert setup.network in container.attrs["NetworkSettings"]["Networks"]
        assert container.attrs["HostConfig"]["Privileged"] is False

    stopped = backend.stop(started[1:])
    assert [(s.name, s.exit_code, s.killed) for s in stopped] == [(started[1].name, 0, False)]
    assert [c.name for c in setup.ours()] == [started[0].name]
    backend.stop(started[:1])
    backend.close()
    assert setup.ours() == []
    assert setup.monitor.refusals() == [], "the monitor's own calls must all pass"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"privileged": True}, "Privileged"),
        ({"volumes": ["/:/host"]}, "Binds"),
        ({"cap_add": ["SYS_ADMIN"]}, "CapAdd"),
        ({"pid_mode": "host"}, "PidMode"),
        ({"image": BASE_IMAGE}, "image"),
    ],
)
def test_a_create_that_reaches_the_host_is_refused_and_creates_nothing(
    setup: Setup, kwargs: dict[str, Any], named: str
) -> None:
    client = setup.through(setup.monitor)
    # Named as the monitor names its containers, so that what is refused is the body's one change.
    name = f"cartero-consumer_sms-0-{uuid.uuid4().hex[:6]}"
    arguments = {
        "image": CONSUMER_IMAGE,
        "name": name,
        "network": setup.network,
        "labels": consumer_labels(setup),
        **kwargs,
    }
    with pytest.raises(docker.errors.APIError) as refused:
        client.containers.run(detach=True, stop_signal="SIGTERM", **arguments)
    client.close()
    assert refused.value.status_code == 403
    assert named in str(refused.value.explanation)
    assert setup.ours() == [], "a refused create left a container behind"
    assert any(named in r["reason"] for r in setup.monitor.refusals()), "each refusal is logged"


def test_an_archive_upload_into_a_consumer_is_refused(setup: Setup) -> None:
    container = setup.engine.containers.create(
        CONSUMER_IMAGE, labels=consumer_labels(setup, slot=9), network=setup.network
    )
    try:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            payload = b"planted"
            info = tarfile.TarInfo("planted")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        client = setup.through(setup.monitor)
        with pytest.raises(docker.errors.APIError) as refused:
            client.api.put_archive(container.id, "/tmp", archive.getvalue())
        client.close()
        assert refused.value.status_code == 403
        with pytest.raises(docker.errors.NotFound):
            container.get_archive("/tmp/planted")
        assert [c.id for c in setup.ours()] == [container.id]  # nothing else appeared
    finally:
        container.remove(force=True)


def test_the_discovery_profile_lists_but_never_inspects(setup: Setup, tmp_path: Path) -> None:
    container = setup.engine.containers.run(
        CONSUMER_IMAGE, detach=True, labels=consumer_labels(setup, slot=7), network=setup.network
    )
    try:
        filters = json.dumps({"label": ["cartero.role=consumer"]})
        listed = httpx.get(f"{setup.discovery.url}/v1.41/containers/json", params={"filters": filters}, timeout=10)
        assert listed.status_code == 200
        assert container.id in [c["Id"] for c in listed.json()]
        assert httpx.get(f"{setup.discovery.url}/v1.41/networks", timeout=10).status_code == 200
        inspect = httpx.get(f"{setup.discovery.url}/v1.41/containers/{container.id}/json", timeout=10)
        assert inspect.status_code == 403 and inspect.headers["content-type"].startswith("application/problem+json")
        assert "Env" not in inspect.text
        unfiltered = httpx.get(f"{setup.discovery.url}/v1.41/containers/json", timeout=10)
        assert unfiltered.status_code == 403

        # Prometheus' own Docker discovery, configured as prometheus/prometheus.yml configures it.
        discovered = prometheus_discovers(setup.discovery, tmp_path)
        assert f"/{container.name}" in discovered, discovered
    finally:
        container.remove(force=True)


def prometheus_discovers(gate: Gate, tmp: Path) -> set[str]:
    """The container names a real Prometheus finds through `gate` (Debian's package)."""
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("the prometheus binary (Debian package prometheus; local/install-test-deps.sh)")
    assert binary is not None
    config = tmp / "prometheus.yml"
    config.write_text(
        "scrape_configs:\n"
        "  - job_name: consumers\n"
        "    docker_sd_configs:\n"
        f"      - host: {gate.url.replace('http://', 'tcp://')}\n"
        "        refresh_interval: 1s\n"
        "        filters:\n"
        "          - name: label\n"
        '            values: ["cartero.role=consumer"]\n'
    )
    port = free_port()
    before = len(gate.refusals())
    with (tmp / "prometheus.log").open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    try:

        def names() -> set[str]:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", params={"state": "any"}, timeout=2).json()
            targets = answer["data"]["activeTargets"] + answer["data"]["droppedTargets"]
            return {t["discoveredLabels"].get("__meta_docker_container_name", "") for t in targets} - {""}

        found: set[str] = wait_until(names, timeout=30, interval=0.5, what="Prometheus' docker discovery")
    finally:
        stop_process(process)
    refused = gate.refusals()[before:]
    assert refused == [], f"Prometheus' discovery needed calls the profile refuses: {refused}"
    return found
