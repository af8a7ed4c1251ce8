"""Every service image builds and starts on the real Docker-API engine (host networking): HTTP
services answer /healthz, consumers take a message off the local RabbitMQ, each on its own vhost
and database. Parametrized over every service folder with a Dockerfile."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx
import pika
import pytest
from docker.models.containers import Container

from cartero_common.wire import QUEUE_EMAIL, QUEUE_LOGS, QUEUE_SMS
from tests.deploy.engine import build, connect, dockerfile_healthcheck, services_with_images
from tests.support import free_port, isolated_database, isolated_vhost, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
SERVICES = services_with_images()
ALL_SERVICES = {
    "sender",
    "token_validator",
    "token_panel",
    "consumer_logs",
    "consumer_sms",
    "consumer_email",
    "consumer_webhooks",
    "dead_letters",
    "monitor",
    "docker_gate",
}


@dataclass
class Running:
    container: Container
    env: dict[str, str]
    amqp_url: str = ""
    port: int = 0


@dataclass(frozen=True)
class Spec:
    """How a service is started for the test, and what shows it works."""

    port_env: str = ""  # HTTP services: /healthz on this port
    metrics_port_envs: tuple[str, ...] = ()  # /metrics on each of these ports
    broker: bool = False
    database: bool = False
    migrate: bool = False
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[Running], None] | None = None


def publish(amqp_url: str, queue: str, payload: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        body = json.dumps(payload).encode()
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=payload["id"])
        channel.basic_publish("", queue, body, properties, mandatory=True)
    finally:
        connection.close()


def stores_an_event(run: Running) -> None:
    event = {
        "id": str(uuid.uuid4()),
        "evento": "enviado",
        "cola": QUEUE_SMS,
        "mensaje": "hola",
        "telefono": "600111222",
    }
    publish(run.amqp_url, QUEUE_LOGS, event)
    url = f"http://127.0.0.1:{run.port}/v1/events"
    auth = {"Authorization": f"Bearer {KEYS['CONSUMER_LOGS_READ_KEY']}"}
    assert httpx.get(url, timeout=2).status_code == 401
    stored = wait_until(
        lambda: httpx.get(url, params={"id": event["id"]}, headers=auth, timeout=2).json(), timeout=30, what="event"
    )
    assert stored[0]["evento"] == "enviado"


def consumes(queue: str, message: dict[str, str]) -> Callable[[Running], None]:
    """Publish one message to `queue`; the consumer reports it `consumido` on `logs`."""

    def check(run: Running) -> None:
        sent = {"id": str(uuid.uuid4()), "fecha": "2025-01-01 10:00:00", **message}
        publish(run.amqp_url, queue, sent)

        def consumed() -> bool:
            connection = pika.BlockingConnection(pika.URLParameters(run.amqp_url))
            try:
                channel = connection.channel()
                while True:
                    method, _, body = channel.basic_get(QUEUE_LOGS, auto_ack=True)
                    if method is None:
                        return False
                    event = json.loads(body)
                    if event.get("id") == sent["id"] and event.get("evento") == "consumido":
                        return True
            finally:
                connection.close()

        wait_until(consumed, timeout=45, interval=0.5, what=f"a consumido event for the message on {queue}")

    return check


def gate_refuses_an_inspect(run: Running) -> None:
    """The image's gate judges requests (here with no engine socket: a refusal needs none)."""
    answer = httpx.get(f"http://127.0.0.1:{run.port}/v1.43/containers/anything/json", timeout=5)
    assert answer.status_code == 403, answer.text
    assert "discovery" in answer.json()["detail"]


KEYS = {
    "VALIDATOR_SERVICE_KEY": "service-key-for-tests",
    "VALIDATOR_ADMIN_KEY": "admin-key-for-tests",
    "CONSUMER_LOGS_READ_KEY": "read-key-for-tests-0123",
}
SPECS: dict[str, Spec] = {
    "sender": Spec(port_env="SENDER_PORT", broker=True, env={"VALIDATOR_URL": "http://127.0.0.1:9", **KEYS}),
    "consumer_logs": Spec(
        port_env="CONSUMER_LOGS_PORT", broker=True, database=True, migrate=True, env=KEYS, check=stores_an_event
    ),
    "token_validator": Spec(port_env="TOKEN_VALIDATOR_PORT", database=True, migrate=True, env=KEYS),
    "token_panel": Spec(
        port_env="TOKEN_PANEL_PORT",
        env={
            "VALIDATOR_URL": "http://127.0.0.1:9",
            "PANEL_SECRET_KEY": "panel-secret-for-tests-0123456789abcdef",
            **KEYS,
        },
    ),
    "consumer_sms": Spec(
        metrics_port_envs=("CONSUMER_SMS_METRICS_PORT",),
        broker=True,
        database=True,
        migrate=True,
        check=consumes(QUEUE_SMS, {"mensaje": "Hola desde la imagen", "telefono": "+34600111222"}),
    ),
    "consumer_email": Spec(
        metrics_port_envs=("CONSUMER_EMAIL_METRICS_PORT",),
        broker=True,
        database=True,
        migrate=True,
        env={"EMAIL_PROVIDER": "file", "MAIL_DIR": "/tmp/cartero-mail"},
        check=consumes(QUEUE_EMAIL, {"destinatario": "ana@example.com", "asunto": "Hola", "cuerpo": "Prueba"}),
    ),
    # Up and consuming both its queues; no endpoint to deliver to (the validator is not there).
    "consumer_webhooks": Spec(
        metrics_port_envs=("CONSUMER_WEBHOOKS_METRICS_PORT",),
        broker=True,
        env={"VALIDATOR_URL": "http://127.0.0.1:9", "VALIDATOR_WEBHOOKS_KEY": "webhooks-key-for-tests-0123"},
    ),
    # Up and answering; the DLQs it reads are the broker's (empty here).
    "dead_letters": Spec(
        port_env="DEAD_LETTERS_PORT", broker=True, env={"DEAD_LETTERS_KEY": "dead-letters-key-for-tests"}
    ),
    "docker_gate": Spec(
        port_env="DOCKER_GATE_PORT", env={"DOCKER_GATE_PROFILE": "discovery"}, check=gate_refuses_an_inspect
    ),
    # supervisord with monitor_sms and monitor_email; nothing to scale (MONITOR_MIN=0, empty queues).
    "monitor": Spec(
        metrics_port_envs=("MONITOR_SMS_METRICS_PORT", "MONITOR_EMAIL_METRICS_PORT"),
        broker=True,
        env={"MONITOR_SOURCE": "amqp", "MONITOR_BACKEND": "process", "MONITOR_MIN": "0"},
    ),
}


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    engine = connect()
    yield engine
    engine.close()


def spec_for(service: str) -> Spec:
    assert service in SPECS, f"{service}/Dockerfile exists: say in SPECS (tests/deploy/test_images.py) how to start it"
    return SPECS[service]


def in_image(client: docker.DockerClient, image: str, code: str) -> str:
    output: bytes = client.containers.run(
        image, entrypoint=["python", "-c", code], network_mode="host", remove=True, stdout=True, stderr=True
    )
    return output.decode()


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_builds_small_and_unprivileged(client: docker.DockerClient, service: str) -> None:
    spec_for(service)
    built = build(client, service)
    config = built.image.attrs["Config"]
    assert config.get("User") not in (None, "", "root", "0", "0:0"), "runs as root"
    assert config.get("StopSignal") in (None, "", "SIGTERM", "15"), config.get("StopSignal")
    command = " ".join((config.get("Entrypoint") or []) + (config.get("Cmd") or []))
    assert f"-m {service}" in command or "supervisord" in command, command
    others = sorted(ALL_SERVICES - {service})
    present = in_image(
        client,
        built.image.id,
        f"import importlib.util as u; print([m for m in {others!r} if u.find_spec(m)])",
    )
    assert present.strip() == "[]", f"other services inside the {service} image: {present}"
    assert in_image(client, built.image.id, "import cartero_common, os; print(os.getuid())").strip() != "0"


def wait_answering(container: Container, url: str, *, timeout: float = 60) -> None:
    def answers() -> bool:
        container.reload()
        if container.status in ("exited", "dead"):
            raise RuntimeError("exited")
        return httpx.get(url, timeout=2).status_code == 200

    try:
        wait_until(answers, timeout=timeout, interval=0.3, what=url)
    except AssertionError:
        raise AssertionError(f"{url} never answered 200; logs:\n{logs(container)}") from None


def logs(container: Container) -> str:
    return str(container.logs(tail=60).decode(errors="replace"))


def run_to_completion(client: docker.DockerClient, image: str, env: dict[str, str], *args: str) -> None:
    container = client.containers.run(image, command=list(args), environment=env, network_mode="host", detach=True)
    try:
        status = container.wait(timeout=180)["StatusCode"]
        assert status == 0, f"{' '.join(args)} exited {status}:\n{logs(container)}"
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_starts_and_does_its_job(client: docker.DockerClient, service: str) -> None:
    spec = spec_for(service)
    image = build(client, service).image.id
    with ExitStack() as stack:
        env = {"LOG_LEVEL": "INFO", **spec.env}
        if spec.broker:
            env["AMQP_URL"] = stack.enter_context(isolated_vhost("cartero-test-image"))
        if spec.database:
            env["DATABASE_URL"] = stack.enter_context(isolated_database("cartero_test_image"))
        if spec.migrate:
            run_to_completion(client, image, env, "migrate")
        port = free_port() if spec.port_env else 0
        if spec.port_env:
            env[spec.port_env] = str(port)
        metrics = {name: free_port() for name in spec.metrics_port_envs}
        env.update({variable: str(number) for variable, number in metrics.items()})
        name = f"cartero-test-{service}-{uuid.uuid4().hex[:8]}"
        container = client.containers.run(image, name=name, environment=env, network_mode="host", detach=True)
        stack.callback(container.remove, force=True)
        run = Running(container=container, env=env, amqp_url=env.get("AMQP_URL", ""), port=port)
        if spec.port_env:
            wait_answering(run.container, f"http://127.0.0.1:{run.port}/healthz")
            probe = dockerfile_healthcheck(service)
            assert probe, f"{service} serves HTTP: its Dockerfile needs a HEALTHCHECK"
            result = run.container.exec_run(probe)
            assert result.exit_code == 0, f"HEALTHCHECK fails inside the container: {result.output!r}"
        for port in metrics.values():
            wait_answering(run.container, f"http://127.0.0.1:{port}/metrics")
        if spec.check:
            spec.check(run)
        # SIGTERM (the image's STOPSIGNAL) within the grace period compose gives: a clean exit.
        run.container.stop(timeout=35)
        run.container.reload()
        assert run.container.attrs["State"]["ExitCode"] == 0, f"unclean stop:\n{logs(run.container)}"
