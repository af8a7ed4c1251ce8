"""Races across processes: several validator processes on one database, 200 concurrent
validations, and never one use more than the quota."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port, isolated_database, python_env, stop_process, wait_http
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, Tokens, migrated

ATTEMPTS = 200
QUOTA = 50


@dataclass
class Replicas:
    urls: list[str]
    tokens: Tokens


@contextmanager
def replicas(database_url: str, count: int, log_dir: Path) -> Iterator[Replicas]:
    """`count` validator processes (`python -m token_validator`) sharing one database."""
    db = migrated(database_url)
    with ExitStack() as stack:
        urls = []
        for index in range(count):
            port = free_port()
            env = python_env(
                DATABASE_URL=database_url,
                VALIDATOR_SERVICE_KEY=SERVICE_KEY,
                VALIDATOR_ADMIN_KEY=ADMIN_KEY,
                TOKEN_VALIDATOR_PORT=str(port),
                LOG_LEVEL="WARNING",
            )
            log = stack.enter_context((log_dir / f"validator-{index}.log").open("wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", "token_validator"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            stack.callback(stop_process, process)
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http(f"{url}/healthz", timeout=60)
        yield Replicas(urls, Tokens(db))
    db.dispose()


def race(urls: list[str], tokens: list[str]) -> tuple[int, float]:
    """ATTEMPTS validations at once, spread over every replica and token; (allowed, seconds)."""
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {SERVICE_KEY}"}) for url in urls]
    try:
        for client in clients:  # open the keep-alive connections before the start line
            client.get("/healthz")

        def attempt(index: int) -> bool:
            client = clients[index % len(clients)]
            body = {"token": tokens[index % len(tokens)], "action": "sms.send", "request_id": f"race-{index}"}
            response = client.post("/v1/validate", json=body, timeout=30)
            assert response.status_code == 200, response.text
            return bool(response.json()["allowed"])

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=48) as pool:
            allowed = sum(pool.map(attempt, range(ATTEMPTS)))
        return allowed, time.monotonic() - started
    finally:
        for client in clients:
            client.close()


@pytest.fixture(scope="module")
def postgres_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with isolated_database("cartero_race") as url, replicas(url, 3, tmp_path_factory.mktemp("race-pg")) as running:
        yield running


@pytest.mark.parametrize("restriction", ["max_uses", "monthly"])
def test_postgres_token_quota_holds_across_three_processes(postgres_replicas: Replicas, restriction: str) -> None:
    token, token_id = postgres_replicas.tokens.make(
        "application", f"race-{restriction}", restriction=restriction, limit=QUOTA
    )
    allowed, seconds = race(postgres_replicas.urls, [token])
    print(f"\n[race] postgres {restriction}: {allowed} of {ATTEMPTS} allowed (quota {QUOTA}) in {seconds:.2f}s")
    assert allowed == QUOTA
    assert postgres_replicas.tokens.used(token_id) == QUOTA


def test_postgres_group_quota_shared_by_three_users(postgres_replicas: Replicas) -> None:
    tokens = postgres_replicas.tokens
    tokens.owner("group", "race-group", group_quota=("monthly", QUOTA))
    members = []
    for name in ("race-u1", "race-u2", "race-u3"):
        tokens.join("race-group", name)
        members.append(tokens.make("user", name)[0])
    allowed, seconds = race(postgres_replicas.urls, members)
    print(f"\n[race] postgres group of 3 users: {allowed} of {ATTEMPTS} allowed (quota {QUOTA}) in {seconds:.2f}s")
    assert allowed == QUOTA
    assert tokens.group_used("race-group") == QUOTA


def test_sqlite_quota_holds_across_two_processes(tmp_path: Path) -> None:
    with replicas(f"sqlite:///{tmp_path}/race.db", 2, tmp_path) as running:
        token, token_id = running.tokens.make("application", "race-sqlite", restriction="max_uses", limit=QUOTA)
        allowed, seconds = race(running.urls, [token])
        print(f"\n[race] sqlite max_uses: {allowed} of {ATTEMPTS} allowed (quota {QUOTA}) in {seconds:.2f}s")
        assert allowed == QUOTA
        assert running.tokens.used(token_id) == QUOTA
