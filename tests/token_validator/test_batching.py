"""Concurrent validations of one token decided together on PostgreSQL (`token_validator.quota.batcher`):
one statement per batch, never a use more than the quota, one usage and one distinct answer each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import ADMIN, SERVICE
from tests.token_validator.support import Tokens, migrated, settings_for
from token_validator.app import create_app
from token_validator.db import Database
from token_validator.models import Refusal, Usage
from token_validator.quota.batcher import BATCH_SIZE

CONCURRENT = 120


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    database = migrated(pg_url)
    yield database
    database.dispose()


def batches_seen() -> tuple[float, float]:
    """(statements, validations) decided together so far in this process."""
    samples = {s.name: s.value for metric in BATCH_SIZE.collect() for s in metric.samples}
    return samples["validator_spend_batch_size_count"], samples["validator_spend_batch_size_sum"]


async def validate_all(database_url: str, db: Database, clock: FixedClock, bodies: list[dict[str, Any]]) -> list[Any]:
    app = create_app(settings_for(database_url), clock=clock, db=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://validator", headers=SERVICE) as client:
        answers = await asyncio.gather(*(client.post("/v1/validate", json=body) for body in bodies))
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
    return [answer.json() for answer in answers]


def test_a_burst_on_one_token_is_spent_in_batches_and_never_over_the_quota(
    pg_url: str, pg: Database, clock: FixedClock
) -> None:
    tokens = Tokens(pg, clock)
    token, token_id = tokens.make("application", "busy-app", restriction="max_uses", limit=70)
    statements_before, decided_before = batches_seen()

    answers = asyncio.run(
        validate_all(pg_url, pg, clock, [{"token": token, "action": "sms.send"} for _ in range(CONCURRENT)])
    )

    allowed = [a for a in answers if a["allowed"]]
    refused = [a for a in answers if not a["allowed"]]
    assert len(allowed) == 70 and tokens.used(token_id) == 70
    assert {a["code"] for a in refused} == {"usage_exhausted"} and all(a["remaining"] == 0 for a in refused)
    # One usage per allowed answer, and each told a different number of uses left.
    assert len({a["usage_id"] for a in allowed}) == 70
    assert sorted(a["remaining"] for a in allowed) == list(range(70))
    with pg.engine.connect() as connection:
        usages = connection.execute(select(func.count()).where(Usage.token_id == token_id)).scalar_one()
        stored_refusals = connection.execute(select(func.count()).where(Refusal.token_id == token_id)).scalar_one()
    assert usages == 70 and stored_refusals == CONCURRENT - 70
    statements, decided = batches_seen()
    # Fewer statements than validations: they really went together.
    assert decided - decided_before >= 70 and statements - statements_before < decided - decided_before


def test_different_actions_and_costs_are_not_mixed_and_a_bad_token_is_refused_alone(
    pg_url: str, pg: Database, clock: FixedClock
) -> None:
    tokens = Tokens(pg, clock)
    token, token_id = tokens.make("application", "mixed-app", actions="sms.send", restriction="monthly", limit=100)
    bodies = (
        [{"token": token, "action": "sms.send", "cost": 2} for _ in range(20)]
        + [{"token": token, "action": "email.send"} for _ in range(10)]
        + [{"token": token[:-2] + "xx", "action": "sms.send"} for _ in range(5)]
    )
    answers = asyncio.run(validate_all(pg_url, pg, clock, bodies))
    assert all(a["allowed"] for a in answers[:20])
    assert sorted(a["remaining"] for a in answers[:20]) == list(range(60, 100, 2))
    assert {a["code"] for a in answers[20:30]} == {"action_forbidden"}
    assert {a["code"] for a in answers[30:]} == {"invalid_token"}
    assert tokens.used(token_id) == 40


def test_the_batch_endpoint_answers_each_check_in_order_as_if_sent_alone(api: TestClient, tokens: Tokens) -> None:
    limited, limited_id = tokens.make("application", "batch-limited", restriction="max_uses", limit=2)
    unlimited, _ = tokens.make("application", "batch-unlimited")
    checks = [
        {"token": limited, "action": "sms.send"},
        {"token": unlimited, "action": "email.send", "request_id": "r-2"},
        {"token": "app_" + "x" * 40, "action": "sms.send"},
        {"token": unlimited, "action": "sms.send", "cost": 0},
        {"token": limited, "action": "sms.send"},
        {"token": limited, "action": "sms.send"},
    ]
    answer = api.post("/v1/validate/batch", json={"checks": checks}, headers=SERVICE)
    assert answer.status_code == 200, answer.text
    answers = answer.json()["answers"]
    assert [a["code"] for a in answers[1:4]] == ["ok", "invalid_token", "ok"]
    assert answers[1]["owner"] == "batch-unlimited" and answers[1]["remaining"] is None
    # The three spends of `limited` race each other: two are allowed, whichever they are.
    spends = [answers[0], answers[4], answers[5]]
    assert sorted(a["code"] for a in spends) == ["ok", "ok", "usage_exhausted"]
    assert tokens.used(limited_id) == 2
    refusals = api.get("/v1/admin/refusals", headers=ADMIN).json()["items"]
    assert sorted(r["code"] for r in refusals) == ["invalid_token", "usage_exhausted"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"checks": []}, 422),
        ({"checks": [{"token": "t", "action": "sms.send"}] * 257}, 422),
        ({"checks": [{"token": "t", "action": "sms.delete"}]}, 422),
        ({"checks": {"token": "t", "action": "sms.send"}}, 422),
        ({}, 422),
    ],
)
def test_a_bad_batch_is_a_422_and_decides_nothing(
    api: TestClient, tokens: Tokens, body: dict[str, Any], status: int
) -> None:
    answer = api.post("/v1/validate/batch", json=body, headers=SERVICE)
    assert answer.status_code == status and answer.json()["code"] == "invalid_request"
    assert api.get("/v1/admin/refusals", headers=ADMIN).json()["total"] == 0


def test_the_batch_endpoint_needs_the_service_key(api: TestClient) -> None:
    body = {"checks": [{"token": "t", "action": "sms.send"}]}
    for headers in ({}, ADMIN, {"Authorization": "Bearer nope"}):
        answer = api.post("/v1/validate/batch", json=body, headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
