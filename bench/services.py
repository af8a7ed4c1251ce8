"""Starting what the benchmark measures: real suite processes on free ports, isolated broker
vhost and database, stopped and removed afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

from cartero_common.wire import QUEUE_LOGS, QUEUE_SMS
from tests.support import (
    consumer_count,
    free_port,
    isolated_database,
    isolated_vhost,
    stop_process,
    wait_http,
    wait_until,
)

PYTHON = sys.executable


@dataclass(frozen=True)
class Suite:
    amqp_url: str
    validator_url: str
    sender_port: int
    seed_port: int
    bare_port: int  # the bare FastAPI + aio-pika publisher (`bench.bare_publish`)
    service_key: str
    env: dict[str, str]
    logs_port: int  # where the status phase serves its message log (`bench.status_log`)
    # Every process started, by name (the soak samples their memory, uvicorn's workers included).
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs_database_url: str = ""  # consumer_logs' database, when the suite runs its consumers


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def sender_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m sender` as deployed, with SENDER_PORT and SENDER_WORKERS from `env`."""
    return start_process([PYTHON, "-m", "sender"], env, log)


def uvicorn_app(app: str, port: int, workers: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A comparison app (`module:app`) under uvicorn with the sender's workers."""
    command = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return start_process([*command, "--log-level", "warning", "--no-access-log"], env, log)


def create_token(env: dict[str, str], *, owner: str, restriction: list[str]) -> str:
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "token_validator",
            "create-token",
            "--kind",
            "application",
            "--owner",
            owner,
            "--actions",
            "sms.send,email.send",
            *restriction,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def start_consumers(
    stack: ExitStack, env: dict[str, str], workdir: Path, logs_port: int
) -> tuple[dict[str, subprocess.Popen[bytes]], str]:
    """consumer_sms (log provider) and consumer_logs, each on a PostgreSQL database of its own as
    deployed, so that what the sender accepts is delivered and its events stored; consumer_logs
    serves on `logs_port` (the sender's CONSUMER_LOGS_URL). Returns the processes and
    consumer_logs' database URL."""
    logs_database = stack.enter_context(isolated_database("cartero_bench_logs"))
    ledger_database = stack.enter_context(isolated_database("cartero_bench_sms"))
    logs_env = dict(
        env,
        DATABASE_URL=logs_database,
        CONSUMER_LOGS_HOST="127.0.0.1",
        CONSUMER_LOGS_PORT=str(logs_port),
        # No consumer_webhooks runs here, and no owner has an endpoint: notifications would only
        # pile up in `webhooks`.
        CONSUMER_LOGS_WEBHOOKS="false",
    )
    subprocess.run([PYTHON, "-m", "consumer_logs", "migrate"], env=logs_env, check=True, capture_output=True)
    sms_env = dict(env, CONSUMER_SMS_DATABASE_URL=ledger_database, SMS_PROVIDER="log", CONSUMER_SMS_METRICS_PORT="0")
    processes = {
        "consumer_sms": start_process([PYTHON, "-m", "consumer_sms"], sms_env, workdir / "consumer_sms.log"),
        "consumer_logs": start_process([PYTHON, "-m", "consumer_logs"], logs_env, workdir / "consumer_logs.log"),
    }
    for process in processes.values():
        stack.callback(stop_process, process)
    wait_http(f"http://127.0.0.1:{logs_port}/healthz", timeout=60)
    for queue in (QUEUE_SMS, QUEUE_LOGS):
        wait_until(partial(consumer_count, env["AMQP_URL"], queue), timeout=60, what=f"a consumer on {queue}")
    return processes, logs_database


@contextmanager
def running_suite(
    workdir: Path, *, sender_workers: int, validator_workers: int, peers: bool = True, consumers: bool = False
) -> Iterator[Suite]:
    """The validator and the sender; with `peers` the seed-style and bare publishers they are
    compared with; with `consumers` consumer_sms and consumer_logs (`start_consumers`)."""
    with ExitStack() as stack:
        amqp_url = stack.enter_context(isolated_vhost("cartero-bench"))
        database_url = stack.enter_context(isolated_database("cartero_bench"))
        service_key, admin_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        validator_port, sender_port, seed_port, logs_port = free_port(), free_port(), free_port(), free_port()
        bare_port = free_port()
        env = dict(
            os.environ,
            AMQP_URL=amqp_url,
            DATABASE_URL=database_url,
            VALIDATOR_SERVICE_KEY=service_key,
            VALIDATOR_ADMIN_KEY=admin_key,
            VALIDATOR_URL=f"http://127.0.0.1:{validator_port}",
            TOKEN_VALIDATOR_HOST="127.0.0.1",
            TOKEN_VALIDATOR_PORT=str(validator_port),
            TOKEN_VALIDATOR_WORKERS=str(validator_workers),
            SENDER_HOST="127.0.0.1",
            SENDER_PORT=str(sender_port),
            SENDER_WORKERS=str(sender_workers),
            CONSUMER_LOGS_URL=f"http://127.0.0.1:{logs_port}",
            CONSUMER_LOGS_STATUS_KEY=secrets.token_urlsafe(32),
            CONSUMER_LOGS_READ_KEY=secrets.token_urlsafe(32),
            # The services' default: the sender writes its `queued` line per request, as deployed.
            LOG_LEVEL="INFO",
        )
        subprocess.run([PYTHON, "-m", "token_validator", "migrate"], env=env, check=True, capture_output=True)
        processes = {
            "token_validator": start_process([PYTHON, "-m", "token_validator"], env, workdir / "token_validator.log"),
            "sender": sender_process(env, workdir / "sender.log"),
        }
        if peers:
            processes["seed_sender"] = uvicorn_app(
                "bench.seed_sender:app", seed_port, sender_workers, env, workdir / "seed_sender.log"
            )
            processes["bare_publish"] = uvicorn_app(
                "bench.bare_publish:app", bare_port, sender_workers, env, workdir / "bare_publish.log"
            )
        for process in processes.values():
            stack.callback(stop_process, process)
        wait_http(f"http://127.0.0.1:{validator_port}/healthz", timeout=60)
        wait_http(f"http://127.0.0.1:{sender_port}/healthz", timeout=60)
        if peers:
            wait_http(f"http://127.0.0.1:{seed_port}/docs", timeout=60)
            wait_http(f"http://127.0.0.1:{bare_port}/docs", timeout=60)
        logs_database = ""
        if consumers:
            started, logs_database = start_consumers(stack, env, workdir, logs_port)
            processes.update(started)
        httpx.get(f"http://127.0.0.1:{sender_port}/readyz", timeout=10)
        yield Suite(
            amqp_url,
            env["VALIDATOR_URL"],
            sender_port,
            seed_port,
            bare_port,
            service_key,
            env,
            logs_port,
            processes,
            logs_database,
        )
