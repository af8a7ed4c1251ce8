"""The message log's read credential for tests, and `python -m consumer_logs` as its own process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.consumers import start_consumer, wait_consuming
from tests.support import ROOT, free_port, python_env, stop_process, wait_http

READ_KEY = "read-key-for-tests-0123456789"
READ_AUTH = {"Authorization": f"Bearer {READ_KEY}"}


@dataclass(frozen=True)
class ServedLog:
    url: str
    database_url: str
    log: Path


@contextmanager
def serve_consumer_logs(amqp_url: str, tmp: Path, **env: str) -> Iterator[ServedLog]:
    """`python -m consumer_logs` migrated and serving on a free port, over its own SQLite file."""
    port = free_port()
    database_url = f"sqlite:///{tmp}/consumer_logs.db"
    log = tmp / "consumer_logs.log"
    settings = {
        "AMQP_URL": amqp_url,
        "DATABASE_URL": database_url,
        "CONSUMER_LOGS_PORT": str(port),
        "CONSUMER_LOGS_READ_KEY": READ_KEY,
        **env,
    }
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "consumer_logs", "migrate"],
            cwd=ROOT,
            env=python_env(**settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=60,
        )
    process = start_consumer("consumer_logs", log, **settings)
    try:
        wait_consuming(amqp_url, "logs", process)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield ServedLog(f"http://127.0.0.1:{port}", database_url, log)
    finally:
        stop_process(process)
