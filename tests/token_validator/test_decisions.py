"""`/v1/validate` decisions on SQLite and PostgreSQL: kinds, restrictions, the order of checks,
group quotas, month boundaries, refunds, and every refusal stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import ADMIN, SERVICE, validate
from tests.token_validator.support import Tokens
from token_validator.models import Group, Token, Usage
from token_validator.token_strings import Kind

MADRID = ZoneInfo("Europe/Madrid")


@pytest.mark.parametrize("kind", ["application", "group", "user"])
@pytest.mark.parametrize("restriction", ["unlimited", "max_uses", "monthly"])
def test_each_kind_with_each_restriction(
    api: TestClient, tokens: Tokens, clock: FixedClock, kind: Kind, restriction: str
) -> None:
    limit = None if restriction == "unlimited" else 3
    token, token_id = tokens.make(kind, f"{kind}-owner", restriction=restriction, limit=limit)
    assert token.startswith({"application": "app_", "group": "grp_", "user": "usr_"}[kind])
    answers = [validate(api, token) for _ in range(4)]
    assert [a["allowed"] for a in answers[:3]] == [True, True, True]
    first = answers[0]
    assert first["code"] == "ok" and first["token_id"] == token_id and first["kind"] == kind
    assert first["owner"] == f"{kind}-owner" and first["prefix"] == token[:8] and first["usage_id"]
    assert first["owner_ref"].startswith(f"{kind}:") and {a["owner_ref"] for a in answers} == {first["owner_ref"]}
    if restriction == "unlimited":
        assert answers[3]["allowed"] and first["limit"] is None and first["reset_at"] is None
        return
    assert [a["remaining"] for a in answers[:3]] == [2, 1, 0] and first["limit"] == 3
    refused = answers[3]
    assert not refused["allowed"] and refused["usage_id"] is None and refused["remaining"] == 0
    if restriction == "max_uses":
        assert refused["code"] == "usage_exhausted" and refused["reset_at"] is None
    else:
        assert refused["code"] == "monthly_quota_exhausted"
        assert refused["reset_at"] == "2026-04-01T00:00:00+02:00"
        # 10 March 12:00 UTC → 1 April 00:00 Madrid (22:00 UTC on 31 March)
        assert refused["reset_in"] == int((datetime(2026, 3, 31, 22, tzinfo=UTC) - clock()).total_seconds())
    assert tokens.used(token_id) == 3


def test_owner_ref_names_the_owner_not_the_token(api: TestClient, tokens: Tokens) -> None:
    """Two tokens of one owner are told the same `owner_ref`, whichever path decides them (a
    spend, a check without spending, a refusal); another owner of another kind with the same
    name is told another."""
    first, _ = tokens.make("application", "shared-name")
    second, _ = tokens.make("application", "shared-name")
    limited, _ = tokens.make("application", "shared-name", restriction="max_uses", limit=1)
    group, _ = tokens.make("group", "shared-name")
    spent = validate(api, first)
    refs = {
        spent["owner_ref"],
        validate(api, second)["owner_ref"],
        validate(api, first, cost=0)["owner_ref"],
        validate(api, limited)["owner_ref"],
        validate(api, limited)["owner_ref"],  # refused: usage_exhausted
    }
    assert refs == {f"application:{tokens.owner('application', 'shared-name')}"}
    assert validate(api, group)["owner_ref"] == f"group:{tokens.owner('group', 'shared-name')}"
    assert validate(api, "app_" + "x" * 43)["owner_ref"] is None


def test_checks_run_in_order_and_an_early_refusal_spends_nothing(
    api: TestClient, tokens: Tokens, clock: FixedClock
) -> None:
    token, token_id = tokens.make(
        "user",
        "ordered",
        actions="email.send",
        restriction="max_uses",
        limit=1,
        expires_at=clock() + timedelta(days=1),
    )
    assert validate(api, token, "email.send")["allowed"]  # the only use is spent
    tokens.disable("user", "ordered")
    tokens.revoke(token_id)
    clock.set(clock() + timedelta(days=2))
    codes = []
    codes.append(validate(api, token)["code"])
    with tokens.db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE tokens SET revoked_at = NULL")
    codes.append(validate(api, token)["code"])
    clock.set(clock() - timedelta(days=2))
    codes.append(validate(api, token)["code"])
    tokens.disable("user", "ordered", disabled=False)
    codes.append(validate(api, token)["code"])
    codes.append(validate(api, token, "email.send")["code"])
    assert codes == ["token_revoked", "token_expired", "subject_disabled", "action_forbidden", "usage_exhausted"]
    assert tokens.used(token_id) == 1
    assert validate(api, "app_" + "Q" * 43)["code"] == "invalid_token"


def test_cost_zero_checks_without_spending(api: TestClient, tokens: Tokens) -> None:
    token, token_id = tokens.make("application", "checker", restriction="max_uses", limit=1)
    check = validate(api, token, cost=0)
    assert check["allowed"] and check["usage_id"] is None and check["remaining"] == 1
    assert tokens.used(token_id) == 0
    assert validate(api, token)["allowed"]
    after = validate(api, token, cost=0)
    assert not after["allowed"] and after["code"] == "usage_exhausted"
    assert tokens.used(token_id) == 1


def test_a_group_quota_is_shared_by_its_members_and_its_tokens(api: TestClient, tokens: Tokens) -> None:
    tokens.owner("group", "ventas", group_quota=("monthly", 5))
    for user in ("luis", "marta"):
        tokens.join("ventas", user)
    luis, _ = tokens.make("user", "luis")
    marta, marta_id = tokens.make("user", "marta", restriction="max_uses", limit=2)
    team, _ = tokens.make("group", "ventas")
    outsider, _ = tokens.make("user", "nadie")
    results = [validate(api, t)["allowed"] for t in (luis, marta, team, marta, luis)]
    assert results == [True] * 5
    assert tokens.group_used("ventas") == 5
    refused = validate(api, luis)
    assert refused["code"] == "monthly_quota_exhausted" and refused["reset_at"] == "2026-04-01T00:00:00+02:00"
    assert validate(api, team)["code"] == "monthly_quota_exhausted"
    assert validate(api, marta)["code"] == "usage_exhausted"
    assert validate(api, outsider)["allowed"]
    assert tokens.group_used("ventas") == 5 and tokens.used(marta_id) == 2


def test_a_refused_group_spend_rolls_back_the_token(api: TestClient, tokens: Tokens) -> None:
    tokens.owner("group", "tiny", group_quota=("max_uses", 1))
    tokens.owner("group", "roomy", group_quota=("monthly", 100))
    tokens.join("tiny", "pepa")
    tokens.join("roomy", "pepa")
    pepa, pepa_id = tokens.make("user", "pepa", restriction="monthly", limit=10)
    allowed = validate(api, pepa)
    assert allowed["allowed"] and allowed["remaining"] == 0 and allowed["limit"] == 1  # the tiny group binds
    assert {c["scope"] for c in allowed["counters"]} == {"token", "group"} and len(allowed["counters"]) == 3
    refused = validate(api, pepa)
    assert refused["code"] == "usage_exhausted"
    assert tokens.used(pepa_id) == 1 and tokens.group_used("roomy") == 1 and tokens.group_used("tiny") == 1


def test_monthly_resets_lazily_at_the_first_instant_of_the_month(
    api: TestClient, tokens: Tokens, clock: FixedClock
) -> None:
    clock.set(datetime(2026, 1, 31, 23, 59, 58, tzinfo=MADRID))
    token, token_id = tokens.make("application", "monthly", restriction="monthly", limit=2)
    assert [validate(api, token)["allowed"] for _ in range(2)] == [True, True]
    clock.set(datetime(2026, 1, 31, 23, 59, 59, tzinfo=MADRID))
    last = validate(api, token)
    assert last["code"] == "monthly_quota_exhausted" and last["reset_in"] == 1
    assert last["reset_at"] == "2026-02-01T00:00:00+01:00"
    clock.set(datetime(2026, 2, 1, 0, 0, 0, tzinfo=MADRID))
    first_of_february = validate(api, token)
    assert first_of_february["allowed"] and first_of_february["remaining"] == 1
    assert first_of_february["reset_at"] == "2026-03-01T00:00:00+01:00"
    assert tokens.used(token_id) == 1


@pytest.mark.parametrize("counter", ["token", "group"])
def test_a_check_stamped_in_the_month_before_never_takes_the_counter_back(
    api: TestClient, tokens: Tokens, clock: FixedClock, counter: str
) -> None:
    # A replica whose clock lags, or a check stamped before midnight and spent after it: the
    # counter already holds February, and must neither restart January nor forget February.
    last_second = datetime(2026, 1, 31, 23, 59, 59, tzinfo=MADRID)
    clock.set(last_second)
    if counter == "token":  # the fast path decides
        token, _ = tokens.make("application", "late", restriction="monthly", limit=2)
    else:  # the general path: a group quota
        tokens.owner("group", "late-group", group_quota=("monthly", 2))
        tokens.join("late-group", "late-user")
        token, _ = tokens.make("user", "late-user")
    assert [validate(api, token)["allowed"] for _ in range(3)] == [True, True, False]
    clock.set(datetime(2026, 2, 1, 0, 0, 1, tzinfo=MADRID))
    assert validate(api, token)["remaining"] == 1
    clock.set(last_second)
    late = validate(api, token)
    assert late["allowed"] and late["remaining"] == 0  # counted in February, the counter's month
    assert validate(api, token)["code"] == "monthly_quota_exhausted"
    clock.set(datetime(2026, 2, 1, 0, 0, 2, tzinfo=MADRID))
    assert validate(api, token)["code"] == "monthly_quota_exhausted"
    model = Token if counter == "token" else Group
    with tokens.db.engine.connect() as connection:
        state = connection.execute(select(model.used, model.period).where(model.restriction == "monthly")).one()
        uses = dict(connection.execute(select(Usage.period, func.count()).group_by(Usage.period)).all())
    assert tuple(state) == (2, 202602)
    assert uses == {202601: 2, 202602: 2}


@pytest.mark.parametrize(
    ("instant", "reset_at", "reset_in"),
    [
        (datetime(2028, 2, 29, 23, 59, 0, tzinfo=MADRID), "2028-03-01T00:00:00+01:00", 60),
        (datetime(2026, 3, 29, 3, 30, tzinfo=MADRID), "2026-04-01T00:00:00+02:00", 2 * 86400 + 20 * 3600 + 1800),
        (datetime(2026, 10, 31, 23, 0, tzinfo=MADRID), "2026-11-01T00:00:00+01:00", 3600),
        (datetime(2026, 10, 25, 1, 0, tzinfo=MADRID), "2026-11-01T00:00:00+01:00", 7 * 86400 - 3600 + 3600),
    ],
)
def test_leap_years_and_dst_days(
    api: TestClient, tokens: Tokens, clock: FixedClock, instant: datetime, reset_at: str, reset_in: int
) -> None:
    clock.set(instant)
    token, _ = tokens.make("application", "edges", restriction="monthly", limit=1)
    assert validate(api, token)["allowed"]
    refused = validate(api, token)
    assert (refused["code"], refused["reset_at"], refused["reset_in"]) == (
        "monthly_quota_exhausted",
        reset_at,
        reset_in,
    )


def test_refunds_give_the_use_back_once(api: TestClient, tokens: Tokens, clock: FixedClock) -> None:
    tokens.owner("group", "refundable", group_quota=("monthly", 10))
    tokens.join("refundable", "rita")
    token, token_id = tokens.make("user", "rita", restriction="max_uses", limit=5)
    usage_id = validate(api, token)["usage_id"]
    assert tokens.used(token_id) == 1 and tokens.group_used("refundable") == 1
    first = api.post(f"/v1/usage/{usage_id}/refund", headers=SERVICE)
    second = api.post(f"/v1/usage/{usage_id}/refund", headers=SERVICE)
    assert first.json()["status"] == "refunded" and second.json()["status"] == "already_refunded"
    assert tokens.used(token_id) == 0 and tokens.group_used("refundable") == 0
    assert api.post(f"/v1/usage/{'0' * 32}/refund", headers=SERVICE).status_code == 404
    assert api.post("/v1/usage/not-an-id/refund", headers=SERVICE).status_code == 422
    # A refund never reaches into a month that started after the use.
    late = validate(api, token)["usage_id"]
    monthly, monthly_id = tokens.make("application", "m", restriction="monthly", limit=5)
    old_use = validate(api, monthly)["usage_id"]
    clock.set(clock() + timedelta(days=40))
    validate(api, monthly)
    assert api.post(f"/v1/usage/{old_use}/refund", headers=SERVICE).json()["status"] == "refunded"
    assert tokens.used(monthly_id) == 1
    assert api.post(f"/v1/usage/{late}/refund", headers=SERVICE).status_code == 200


def test_every_refusal_is_stored(api: TestClient, tokens: Tokens) -> None:
    token, token_id = tokens.make("application", "recorded", actions="sms.send")
    validate(api, token, "email.send", request_id="req-1", client_ip="203.0.113.9")
    validate(api, "usr_" + "Z" * 43, request_id="req-2")
    validate(api, "not a token at all")
    validate(api, token)  # allowed: not a refusal
    listed = api.get("/v1/admin/refusals", headers=ADMIN).json()
    assert listed["total"] == 3
    newest, unknown, forbidden = listed["items"]
    assert (forbidden["code"], forbidden["token_id"], forbidden["prefix"]) == ("action_forbidden", token_id, token[:8])
    assert (forbidden["client_ip"], forbidden["request_id"], forbidden["action"]) == (
        "203.0.113.9",
        "req-1",
        "email.send",
    )
    assert (unknown["code"], unknown["token_id"], unknown["prefix"]) == ("invalid_token", None, "usr_ZZZZ")
    assert newest["prefix"] is None and newest["client_ip"] == "testclient"
    only_mine = api.get("/v1/admin/refusals", params={"token_id": token_id}, headers=ADMIN).json()
    assert [r["request_id"] for r in only_mine["items"]] == ["req-1"]
