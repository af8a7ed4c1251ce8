from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, isolated_vhost, wait_http


@dataclass(frozen=True)
class Suite:
    sender: str
    events: str
    amqp_url: str
    var: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """The suite started exactly as `make run` starts it, on free ports and its own vhost."""
    var = tmp_path_factory.mktemp("var")
    with isolated_vhost("cartero-e2e") as amqp_url:
        ports = {name: free_port() for name in ("sender", "logs", "sms_metrics", "email_metrics")}
        env = dict(
            os.environ,
            AMQP_URL=amqp_url,
            CARTERO_VAR=str(var),
            SENDER_PORT=str(ports["sender"]),
            CONSUMER_LOGS_PORT=str(ports["logs"]),
            CONSUMER_SMS_METRICS_PORT=str(ports["sms_metrics"]),
            CONSUMER_EMAIL_METRICS_PORT=str(ports["email_metrics"]),
        )
        log = (var / "run.out").open("wb")
        process = subprocess.Popen([str(ROOT / "local" / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
        suite = Suite(
            sender=f"http://127.0.0.1:{ports['sender']}",
            events=f"http://127.0.0.1:{ports['logs']}",
            amqp_url=amqp_url,
            var=var,
            process=process,
        )
        try:
            wait_http(f"{suite.sender}/healthz", timeout=60)
            wait_http(f"{suite.events}/healthz", timeout=60)
            yield suite
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # what Ctrl-C sends
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()
