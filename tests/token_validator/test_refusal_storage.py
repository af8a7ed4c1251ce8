"""Refusals stay bounded: junk presented as a token is counted per client and minute, and
refusals older than REFUSAL_RETENTION_DAYS are forgotten by the validator itself."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cartero_common.clock import FixedClock
from tests.support import wait_until
from tests.token_validator.conftest import ADMIN, validate
from tests.token_validator.support import Tokens, settings_for
from token_validator import refusals
from token_validator.app import create_app
from token_validator.db import Database
from token_validator.models import Refusal
from token_validator.moment import Moment
from token_validator.quota import Check, decide_alone


def _refusals(api: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/admin/refusals", params={"per_page": 200}, headers=ADMIN).json()["items"]
    return items


def _rows(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Refusal)).scalar_one())


def test_values_without_a_tokens_shape_are_counted_per_client_and_minute(
    api: TestClient, db: Database, clock: FixedClock
) -> None:
    start = clock.now
    for n in range(30):
        clock.set(start + timedelta(seconds=n))
        validate(api, f"random-bearer-{n}", client_ip="198.51.100.1", request_id=f"r{n}")
    validate(api, "junk", client_ip="198.51.100.2")
    validate(api, "junk", "email.send", client_ip="198.51.100.1")
    clock.set(start + timedelta(minutes=1, seconds=5))
    validate(api, "junk", client_ip="198.51.100.1")
    validate(api, "usr_" + "Q" * 43, client_ip="198.51.100.1")  # a token's shape: a row of its own
    validate(api, "usr_" + "R" * 43, client_ip="198.51.100.1")
    listed = _refusals(api)
    summary = [(r["client_ip"], r["action"], r["prefix"], r["count"]) for r in listed]
    assert sorted(summary, key=str) == sorted(
        [
            ("198.51.100.1", "sms.send", None, 30),
            ("198.51.100.2", "sms.send", None, 1),
            ("198.51.100.1", "email.send", None, 1),
            ("198.51.100.1", "sms.send", None, 1),
            ("198.51.100.1", "sms.send", "usr_QQQQ", 1),
            ("198.51.100.1", "sms.send", "usr_RRRR", 1),
        ],
        key=str,
    )
    flood = next(r for r in listed if r["count"] == 30)
    assert flood["code"] == "invalid_token" and flood["request_id"] == "r0" and flood["token_id"] is None
    assert flood["at"].startswith("2026-03-10T13:00:00")  # the first one's time (Madrid)
    assert _rows(db) == 6


def test_concurrent_junk_from_one_client_is_still_one_row(db: Database, clock: FixedClock) -> None:
    moment = Moment.at(clock(), ZoneInfo("Europe/Madrid"))
    check = Check(token="definitely not a token", action="sms.send", client_ip="203.0.113.50")
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: decide_alone(db, check, moment).code, range(40)))
    assert codes == ["invalid_token"] * 40
    with db.engine.connect() as connection:
        counts = list(connection.execute(select(Refusal.count)).scalars())
    assert counts == [40]


def test_refusals_older_than_the_retention_are_pruned(
    database_url: str, db: Database, tokens: Tokens, clock: FixedClock
) -> None:
    token, _ = tokens.make("application", "pruned", actions="sms.send")
    with TestClient(create_app(settings_for(database_url), clock=clock, db=db)) as api:
        validate(api, token, "email.send")  # action_forbidden
        validate(api, "junk")
        clock.set(clock.now + timedelta(days=89))
        validate(api, "junk")
    assert _rows(db) == 3
    assert refusals.prune(db.engine, clock.now + timedelta(days=1, seconds=1), timedelta(days=90)) == 2
    assert _rows(db) == 1


def test_the_validator_prunes_refusals_itself(database_url: str, db: Database, clock: FixedClock) -> None:
    moment = Moment.at(clock(), ZoneInfo("Europe/Madrid"))
    decide_alone(db, Check(token="junk", action="sms.send", client_ip="192.0.2.1"), moment)
    decide_alone(db, Check(token="app_" + "x" * 43, action="sms.send"), moment)
    assert _rows(db) == 2
    clock.set(clock.now + timedelta(days=8))
    settings = settings_for(database_url, refusal_retention_days=7)
    with TestClient(create_app(settings, clock=clock, db=db)):
        wait_until(lambda: _rows(db) == 0, timeout=10, what="refusals pruned at start-up")
