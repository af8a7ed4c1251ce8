"""A rate limit across processes: three validator processes on one PostgreSQL, 1,000 validations
within one second at a token limited to 100 a second. The leases of a window never add up to more
than its allowance, so no window accepts more than 100 (docs/tokens-and-quotas.md#rate-limits)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from tests.support import isolated_database
from tests.token_validator.support import SERVICE_KEY
from tests.token_validator.test_race import Replicas, replicas
from token_validator.models import Usage
from token_validator.moment import as_utc

RATE = 100
REQUESTS = 1000


@pytest.fixture(scope="module")
def three_validators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with isolated_database("cartero_rate") as url, replicas(url, 3, tmp_path_factory.mktemp("rate-pg")) as running:
        yield running


async def _burst(urls: list[str], token: str, count: int, spread: float) -> tuple[list[dict[str, object]], float]:
    """`count` validations sent evenly over `spread` seconds, starting on a whole second, spread
    over every process; their answers in sending order, and when the last was sent (seconds
    after the first)."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    clients = [httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) for url in urls]
    try:
        await asyncio.gather(*(client.get("/healthz") for client in clients))
        await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.02)
        started = time.monotonic()
        last_sent = 0.0

        async def one(index: int) -> dict[str, object]:
            await asyncio.sleep(max(0.0, started + index * spread / count - time.monotonic()))
            body = {"token": token, "action": "sms.send", "request_id": f"rate-{index}"}
            nonlocal last_sent
            last_sent = max(last_sent, time.monotonic() - started)
            response = await clients[index % len(clients)].post("/v1/validate", json=body)
            assert response.status_code == 200, response.text
            answer: dict[str, object] = response.json()
            return answer

        answers = list(await asyncio.gather(*(one(index) for index in range(count))))
        return answers, last_sent
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def test_three_processes_accept_at_most_the_rate_in_each_window(three_validators: Replicas) -> None:
    tokens = three_validators.tokens
    token, token_id = tokens.make("application", "rate-race", restriction="max_uses", limit=100_000)
    tokens.rate(RATE, "second", token_id=token_id)

    sent = time.monotonic()
    answers, last_sent = asyncio.run(_burst(three_validators.urls, token, REQUESTS, 1.0))
    took = time.monotonic() - sent
    accepted = [a for a in answers if a["allowed"]]
    refused = [a for a in answers if not a["allowed"]]
    assert {a["code"] for a in refused} <= {"rate_limited"}
    assert all(a["reset_in"] == 1 and a["remaining"] == 0 and a["limit"] == RATE for a in refused)

    with three_validators.tokens.db.engine.connect() as connection:
        spent = [
            as_utc(at) for at in connection.execute(select(Usage.spent_at).where(Usage.token_id == token_id)).scalars()
        ]
    per_window = Counter(int(at.timestamp()) for at in spent if at is not None)
    print(
        f"\n[rate] {len(accepted)} of {REQUESTS} accepted at {RATE}/s by 3 processes, sent in {last_sent:.2f}s,"
        f" answered in {took:.2f}s; per window: {sorted(per_window.values(), reverse=True)}"
    )
    assert len(spent) == len(accepted) == tokens.used(token_id)  # a rate refusal spends nothing
    assert max(per_window.values()) <= RATE
    assert len(accepted) <= RATE * len(per_window)
    assert max(per_window.values()) >= RATE // 2  # refusing everything would be no answer either

    # The next window accepts again.
    time.sleep(math.ceil(time.time()) - time.time() + 0.05)
    again, _ = asyncio.run(_burst(three_validators.urls, token, 30, 0.1))
    assert sum(bool(a["allowed"]) for a in again) == 30
