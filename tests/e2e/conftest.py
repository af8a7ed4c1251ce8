from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.monitor.helpers import consumers_on
from tests.support import ROOT, free_port, isolated_vhost, rabbit_api, wait_until

READY_LINE = "Cartero is ready"


@dataclass(frozen=True)
class Suite:
    sender: str
    events: str
    validator: str
    panel: str
    amqp_url: str
    var: Path
    process: subprocess.Popen[bytes]
    monitor_sms: str
    ports: dict[str, int]

    def first_run(self) -> dict[str, str]:
        """ADMIN_USERNAME, ADMIN_PASSWORD, DEMO_TOKEN as `make run` wrote them on the first start."""
        lines = (self.var / "first-run.txt").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.first_run()['DEMO_TOKEN']}"}

    def secrets(self) -> dict[str, str]:
        """The keys `make run` generated into var/secrets.env."""
        lines = (self.var / "secrets.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    @property
    def read_auth(self) -> dict[str, str]:
        """What reading the message log takes."""
        return {"Authorization": f"Bearer {self.secrets()['CONSUMER_LOGS_READ_KEY']}"}


def run_env(var: Path, amqp_url: str) -> tuple[dict[str, str], dict[str, int]]:
    """The environment `make run` gets in these tests: free ports, its own vhost and var/."""
    names = (
        "sender",
        "logs",
        "sms_metrics",
        "email_metrics",
        "webhooks_metrics",
        "monitor_sms",
        "monitor_email",
        "validator",
        "panel",
        "dead_letters",
    )
    ports = {name: free_port() for name in names}
    env = dict(
        os.environ,
        AMQP_URL=amqp_url,
        CARTERO_VAR=str(var),
        SENDER_PORT=str(ports["sender"]),
        CONSUMER_LOGS_PORT=str(ports["logs"]),
        CONSUMER_SMS_METRICS_PORT=str(ports["sms_metrics"]),
        CONSUMER_EMAIL_METRICS_PORT=str(ports["email_metrics"]),
        CONSUMER_WEBHOOKS_METRICS_PORT=str(ports["webhooks_metrics"]),
        MONITOR_SMS_METRICS_PORT=str(ports["monitor_sms"]),
        MONITOR_EMAIL_METRICS_PORT=str(ports["monitor_email"]),
        TOKEN_VALIDATOR_PORT=str(ports["validator"]),
        TOKEN_PANEL_PORT=str(ports["panel"]),
        DEAD_LETTERS_PORT=str(ports["dead_letters"]),
    )
    for inherited in (
        "VALIDATOR_SERVICE_KEY",
        "VALIDATOR_ADMIN_KEY",
        "VALIDATOR_WEBHOOKS_KEY",
        "WEBHOOKS_ALLOW_PRIVATE_URLS",
        "VALIDATOR_URL",
        "DATABASE_URL",
        "CONSUMER_LOGS_URL",
        "PANEL_SECRET_KEY",
        "CONSUMER_LOGS_READ_KEY",
        "CONSUMER_LOGS_STATUS_KEY",
        "CONSUMER_LOGS_STORE_CONTENT",
        "DEAD_LETTERS_KEY",
        "DEAD_LETTERS_URL",
        "METRICS_HOST",
    ):
        env.pop(inherited, None)
    return env, ports


@contextmanager
def started_suite(var: Path, vhost_prefix: str = "cartero-e2e") -> Iterator[Suite]:
    """The suite started exactly as `make run` starts it, on free ports and its own vhost."""
    with isolated_vhost(vhost_prefix) as amqp_url:
        env, ports = run_env(var, amqp_url)
        log = (var / "run.out").open("wb")
        process = subprocess.Popen([str(ROOT / "local" / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
        suite = Suite(
            sender=f"http://127.0.0.1:{ports['sender']}",
            events=f"http://127.0.0.1:{ports['logs']}",
            validator=f"http://127.0.0.1:{ports['validator']}",
            panel=f"http://127.0.0.1:{ports['panel']}",
            amqp_url=amqp_url,
            var=var,
            process=process,
            monitor_sms=f"http://127.0.0.1:{ports['monitor_sms']}",
            ports=ports,
        )
        try:
            # The ready line comes only once every service answers: a request right after it works.
            wait_until(lambda: READY_LINE in (var / "run.out").read_text(), timeout=90, what="make run's ready line")
            for url in (suite.sender, suite.events, suite.validator):
                assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200, url
            assert httpx.get(f"{suite.panel}/healthz", timeout=5).status_code == 200
            # consumer_sms is started by monitor_sms on its first tick.
            wait_until(lambda: consumers_on(amqp_url, "cola_sms") >= 1, timeout=60, what="a consumer on cola_sms")
            yield suite
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # what Ctrl-C sends
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()
            delete_role_users(var)


def role_users(var: Path) -> dict[str, str]:
    """The RabbitMQ users `make run` made for this var/ (RABBITMQ_<ROLE>_USER in secrets.env)."""
    secrets = var / "secrets.env"
    lines = secrets.read_text().splitlines() if secrets.exists() else []
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {k.removeprefix("RABBITMQ_").removesuffix("_USER").lower(): v for k, v in pairs if k.endswith("_USER")}


def delete_role_users(var: Path) -> None:
    """Users are global to the broker, unlike the vhost this run had: remove them too."""
    for user in role_users(var).values():
        rabbit_api("DELETE", f"/users/{quote(user, safe='')}")


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    with started_suite(tmp_path_factory.mktemp("var")) as running:
        yield running
