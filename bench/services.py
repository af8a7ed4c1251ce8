"""Starting what the benchmark measures: real suite processes on free ports, isolated broker
vhost and database, stopped and removed afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import free_port, isolated_database, isolated_vhost, stop_process, wait_http

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
    pids: dict[str, int]  # the started processes by part: validator, sender, seed, bare


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def sender_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m sender` as deployed, with SENDER_PORT and SENDER_WORKERS from `env`."""
    return _start([PYTHON, "-m", "sender"], env, log)


def uvicorn_app(app: str, port: int, workers: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A comparison app (`module:app`) under uvicorn with the sender's workers."""
    command = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return _start([*command, "--log-level", "warning", "--no-access-log"], env, log)


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


@contextmanager
def running_suite(workdir: Path, *, sender_workers: int, validator_workers: int) -> Iterator[Suite]:
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
        processes = [
            _start([PYTHON, "-m", "token_validator"], env, workdir / "token_validator.log"),
            sender_process(env, workdir / "sender.log"),
            uvicorn_app("bench.seed_sender:app", seed_port, sender_workers, env, workdir / "seed_sender.log"),
            uvicorn_app("bench.bare_publish:app", bare_port, sender_workers, env, workdir / "bare_publish.log"),
        ]
        for process in processes:
            stack.callback(stop_process, process)
        wait_http(f"http://127.0.0.1:{validator_port}/healthz", timeout=60)
        wait_http(f"http://127.0.0.1:{sender_port}/healthz", timeout=60)
        wait_http(f"http://127.0.0.1:{seed_port}/docs", timeout=60)
        wait_http(f"http://127.0.0.1:{bare_port}/docs", timeout=60)
        httpx.get(f"http://127.0.0.1:{sender_port}/readyz", timeout=10)
        pids = dict(zip(("validator", "sender", "seed", "bare"), (process.pid for process in processes), strict=True))
        yield Suite(
            amqp_url, env["VALIDATOR_URL"], sender_port, seed_port, bare_port, service_key, env, logs_port, pids
        )
