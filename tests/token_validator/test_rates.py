"""Rate limits beside quotas, in one validator process: set through the admin API, decided in
memory, refused as `rate_limited` without spending a quota use (docs/tokens-and-quotas.md#rate-limits)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import ADMIN, validate
from tests.token_validator.support import Tokens
from token_validator.models import RateLimit, Refusal
from token_validator.rates import leases

A = "/v1/admin"


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _app(api: TestClient, name: str = "rated") -> int:
    return int(_ok(api.post(f"{A}/applications", json={"name": name}, headers=ADMIN), 201)["id"])


def _token(api: TestClient, **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = _ok(api.post(f"{A}/tokens", json={"actions": ["*"], **body}, headers=ADMIN), 201)
    return created


def test_a_rate_is_set_on_create_changed_cleared_and_audited(api: TestClient) -> None:
    owner = _app(api)
    token = _token(api, kind="application", owner_id=owner, rate={"limit": 100, "per": "second"})
    assert token["rate"] == {"limit": 100, "per": "second"}
    changed = _ok(
        api.put(f"{A}/tokens/{token['id']}/rate", json={"rate": {"limit": 5, "per": "minute"}}, headers=ADMIN)
    )
    assert changed["rate"] == {"limit": 5, "per": "minute"}
    listed = _ok(api.get(f"{A}/tokens", headers=ADMIN))["items"]
    assert [t["rate"] for t in listed] == [{"limit": 5, "per": "minute"}]
    cleared = _ok(api.put(f"{A}/tokens/{token['id']}/rate", json={"rate": None}, headers=ADMIN))
    assert cleared["rate"] is None
    trail = _ok(api.get(f"{A}/audit", params={"action": "token.rate"}, headers=ADMIN))["items"]
    assert [e["details"]["rate"] for e in trail] == [
        None,
        {"limit": 5, "per": "minute"},
        {"limit": 100, "per": "second"},
    ]
    assert all(e["details"]["prefix"] == token["prefix"] for e in trail)

    group = _ok(api.post(f"{A}/groups", json={"name": "g", "rate": {"limit": 7, "per": "second"}}, headers=ADMIN), 201)
    assert group["rate"] == {"limit": 7, "per": "second"}
    again = _ok(api.put(f"{A}/groups/{group['id']}/rate", json={"rate": {"limit": 8, "per": "minute"}}, headers=ADMIN))
    assert again["rate"] == {"limit": 8, "per": "minute"}
    assert _ok(api.get(f"{A}/groups/{group['id']}", headers=ADMIN))["rate"] == {"limit": 8, "per": "minute"}
    trail = _ok(api.get(f"{A}/audit", params={"action": "group.rate"}, headers=ADMIN))["items"]
    assert [e["details"]["rate"] for e in trail] == [{"limit": 8, "per": "minute"}, {"limit": 7, "per": "second"}]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rate": {"limit": 0, "per": "second"}},
        {"rate": {"limit": 1_000_001, "per": "second"}},
        {"rate": {"limit": "100", "per": "second"}},
        {"rate": {"limit": 100.0, "per": "second"}},
        {"rate": {"limit": 100, "per": "hour"}},
        {"rate": {"limit": 100}},
        {"rate": {"limit": 100, "per": "second", "burst": 5}},
        {"rate": "100/s"},
        {"rate": {"limit": True, "per": "second"}},
    ],
)
def test_a_bad_rate_is_a_422_problem(api: TestClient, body: dict[str, Any]) -> None:
    token = _token(api, kind="application", owner_id=_app(api))
    for path in (f"{A}/tokens/{token['id']}/rate", f"{A}/groups/1/rate"):
        response = api.put(path, json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    if body:
        created = api.post(
            f"{A}/tokens", json={"kind": "application", "owner_id": 1, "actions": ["*"], **body}, headers=ADMIN
        )
        assert created.status_code == 422, created.text


def test_over_the_rate_is_rate_limited_spends_nothing_and_the_next_window_allows(
    api: TestClient, clock: FixedClock, tokens: Tokens
) -> None:
    token = _token(api, kind="application", owner_id=_app(api), restriction={"type": "max_uses", "limit": 100})
    _ok(api.put(f"{A}/tokens/{token['id']}/rate", json={"rate": {"limit": 3, "per": "second"}}, headers=ADMIN))
    clock.set(clock.now.replace(microsecond=250_000))
    answers = [validate(api, token["token"]) for _ in range(5)]
    assert [a["code"] for a in answers] == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
    assert [a["rate"]["remaining"] for a in answers] == [2, 1, 0, 0, 0]
    refused = answers[-1]
    assert refused["allowed"] is False and refused["token_id"] == token["id"]
    assert (refused["limit"], refused["remaining"], refused["reset_in"]) == (3, 0, 1)
    assert refused["rate"] == {"limit": 3, "per": "second", "remaining": 0, "reset_in": 1}
    assert tokens.used(token["id"]) == 3  # a rate refusal spends no quota use
    # On an allowed answer, the limit with fewest uses left: the rate's (quota: 97 left).
    assert (answers[0]["limit"], answers[0]["remaining"], answers[0]["reset_in"]) == (3, 2, 1)
    clock.set(clock.now + timedelta(seconds=1))
    assert validate(api, token["token"])["code"] == "ok"
    assert tokens.used(token["id"]) == 4


def test_a_minute_rate_tells_the_seconds_to_the_minute_s_end(api: TestClient, clock: FixedClock) -> None:
    token = _token(api, kind="application", owner_id=_app(api), rate={"limit": 1, "per": "minute"})
    clock.set(clock.now.replace(second=20, microsecond=500_000))
    assert validate(api, token["token"])["code"] == "ok"
    refused = validate(api, token["token"])
    assert refused["code"] == "rate_limited" and refused["reset_in"] == 40


def test_a_quota_refusal_does_not_count_against_the_rate(api: TestClient, clock: FixedClock) -> None:
    token = _token(
        api,
        kind="application",
        owner_id=_app(api),
        restriction={"type": "max_uses", "limit": 1},
        rate={"limit": 2, "per": "second"},
    )
    codes = [validate(api, token["token"])["code"] for _ in range(4)]
    assert codes == ["ok", "usage_exhausted", "usage_exhausted", "usage_exhausted"]
    _ok(api.post(f"{A}/tokens/{token['id']}/remaining", json={"grant": 5}, headers=ADMIN))
    assert [validate(api, token["token"])["code"] for _ in range(2)] == ["ok", "rate_limited"]


def test_a_check_that_spends_nothing_takes_no_slot(api: TestClient) -> None:
    token = _token(api, kind="application", owner_id=_app(api), rate={"limit": 1, "per": "second"})
    assert [validate(api, token["token"], cost=0)["code"] for _ in range(3)] == ["ok", "ok", "ok"]
    assert validate(api, token["token"])["code"] == "ok"


def test_a_group_rate_is_shared_by_the_group_s_tokens_and_its_members(api: TestClient, tokens: Tokens) -> None:
    group = _ok(
        api.post(f"{A}/groups", json={"name": "ventas", "rate": {"limit": 3, "per": "second"}}, headers=ADMIN), 201
    )
    user = _ok(api.post(f"{A}/users", json={"name": "ana"}, headers=ADMIN), 201)
    tokens.join("ventas", "ana")
    of_group = _token(api, kind="group", owner_id=group["id"])
    of_member = _token(api, kind="user", owner_id=user["id"])
    outsider = _token(api, kind="application", owner_id=_app(api))
    codes = [validate(api, t["token"])["code"] for t in (of_group, of_member, of_group, of_member, of_group)]
    assert codes == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
    assert validate(api, outsider["token"])["code"] == "ok"


def test_rate_refusals_are_stored_counted(api: TestClient, db: Any) -> None:
    token = _token(api, kind="application", owner_id=_app(api), rate={"limit": 1, "per": "second"})
    codes = [validate(api, token["token"], client_ip="203.0.113.9", request_id="r")["code"] for _ in range(6)]
    assert codes == ["ok"] + ["rate_limited"] * 5
    # The first refusal after a quiet second is written at once, the others with the next flush.
    asyncio.run(api.app.state.rates.flush())  # type: ignore[attr-defined]
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(Refusal.count, Refusal.token_id, Refusal.client_ip).where(Refusal.code == "rate_limited")
        ).all()
        total = connection.execute(select(func.sum(Refusal.count)).where(Refusal.code == "rate_limited")).scalar()
    assert total == 5 and sorted(r.count for r in rows) == [1, 4]
    assert {(r.token_id, r.client_ip) for r in rows} == {(token["id"], "203.0.113.9")}


def test_leases_never_add_up_to_more_than_the_window_and_never_go_back(
    api: TestClient, db: Any, clock: FixedClock
) -> None:
    token = _token(api, kind="application", owner_id=_app(api), rate={"limit": 25, "per": "second"})
    with db.engine.connect() as connection:
        rate_id = connection.execute(select(RateLimit.id).where(RateLimit.token_id == token["id"])).scalar_one()
    epoch = int(clock.now.timestamp())
    grants = [leases.take(db.engine, rate_id, want=10, epoch=epoch) for _ in range(4)]
    assert [(g.taken, g.granted) for g in grants if g] == [(10, 10), (10, 20), (5, 25), (0, 25)]
    # A process whose clock lags a second takes from the window the row holds: nothing is left.
    late = leases.take(db.engine, rate_id, want=10, epoch=epoch - 1)
    assert late is not None and (late.window, late.taken) == (epoch, 0)
    fresh = leases.take(db.engine, rate_id, want=10, epoch=epoch + 1)
    assert fresh is not None and (fresh.window, fresh.taken, fresh.granted) == (epoch + 1, 10, 10)
    _ok(api.put(f"{A}/tokens/{token['id']}/rate", json={"rate": None}, headers=ADMIN))
    assert leases.take(db.engine, rate_id, want=10, epoch=epoch + 1) is None
