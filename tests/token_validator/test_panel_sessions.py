"""The panel's sessions and sign-in throttle, as the validator keeps them (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import ADMIN
from tests.token_validator.support import serve_validator
from token_validator.app import prune_once
from token_validator.db import Database
from token_validator.models import PanelSession, SignInAttempt

A = "/v1/admin"
PASSWORD = "correct horse battery"


def _admins(api: TestClient, *names: str) -> None:
    for name in names:
        created = api.post(f"{A}/admins", json={"username": name, "password": PASSWORD}, headers=ADMIN)
        assert created.status_code == 201, created.text


def _sign_in(api: TestClient, username: str, password: str = PASSWORD, address: str | None = None) -> Any:
    body: dict[str, Any] = {"username": username, "password": password}
    if address is not None:
        body["client_address"] = address
    return api.post(f"{A}/sessions", json=body, headers=ADMIN)


def _session(api: TestClient, username: str) -> str:
    signed = _sign_in(api, username)
    assert signed.status_code == 200, signed.text
    assert signed.json()["username"] == username
    session_id: str = signed.json()["id"]
    return session_id


def _live(api: TestClient, session_id: str) -> str | None:
    """Whose the session is while it is live; None once the validator says it has ended."""
    answer = api.get(f"{A}/sessions/current", headers={**ADMIN, "X-Cartero-Session": session_id})
    if answer.status_code == 404:
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "session_ended"
        return None
    assert answer.status_code == 200, answer.text
    username: str = answer.json()["username"]
    return username


def test_a_session_ends_at_sign_out_at_its_end_with_a_new_password_and_with_its_admin(
    api: TestClient, clock: FixedClock, db: Database
) -> None:
    _admins(api, "marta", "keeper")
    signed = _sign_in(api, "marta").json()
    assert len(signed["id"]) >= 43  # 256 random bits
    assert datetime.fromisoformat(signed["expires_at"]) == clock.now + timedelta(minutes=480)
    first = signed["id"]
    assert _live(api, first) == "marta"

    out = api.delete(f"{A}/sessions/current", headers={**ADMIN, "X-Cartero-Session": first})
    assert out.status_code == 204 and _live(api, first) is None
    assert api.delete(f"{A}/sessions/current", headers={**ADMIN, "X-Cartero-Session": first}).status_code == 204
    sign_outs = api.get(f"{A}/audit", params={"action": "admin.sign_out"}, headers=ADMIN).json()["items"]
    assert [(e["actor"], e["target_id"]) for e in sign_outs] == [("marta", "marta")]

    lasting = _session(api, "marta")
    clock.set(clock.now + timedelta(minutes=479))
    assert _live(api, lasting) == "marta"
    clock.set(clock.now + timedelta(minutes=2))
    assert _live(api, lasting) is None

    before, other = _session(api, "marta"), _session(api, "keeper")
    changed = api.put(f"{A}/admins/marta/password", json={"password": "a new long password"}, headers=ADMIN)
    assert changed.status_code == 204
    assert _live(api, before) is None and _live(api, other) == "keeper"
    assert _sign_in(api, "marta").status_code == 401
    after = _sign_in(api, "marta", "a new long password").json()["id"]
    assert _live(api, after) == "marta"

    assert api.delete(f"{A}/admins/marta", headers=ADMIN).status_code == 204
    assert _live(api, after) is None and _live(api, other) == "keeper"
    # Only a digest of an id is kept: the database holds nothing a cookie could be made from.
    with db.engine.connect() as connection:
        stored = " ".join(str(row) for row in connection.execute(text("SELECT * FROM panel_sessions")))
    assert other not in stored and after not in stored


def test_a_malformed_session_id_is_a_clear_4xx(api: TestClient) -> None:
    for value in ("short", "x" * 101, "not/url-safe/" * 3):
        answer = api.get(f"{A}/sessions/current", headers={**ADMIN, "X-Cartero-Session": value})
        assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
    assert api.get(f"{A}/sessions/current", headers=ADMIN).status_code == 422
    assert api.get(f"{A}/sessions/current", headers={"X-Cartero-Session": "a" * 43}).status_code == 401


def test_failed_sign_ins_are_limited_per_name_from_an_address_and_per_address(
    api: TestClient, clock: FixedClock
) -> None:
    _admins(api, "marta")
    attacker = "203.0.113.9"
    assert [_sign_in(api, "marta", "wrong", attacker).status_code for _ in range(5)] == [401] * 5
    blocked = _sign_in(api, "marta", PASSWORD, attacker)  # the right password, not even checked
    assert blocked.status_code == 429 and blocked.json()["code"] == "too_many_sign_ins"
    assert blocked.headers["retry-after"] == "900"
    # The name is not locked everywhere, and a different spelling of it shares the count.
    assert _sign_in(api, "marta", PASSWORD, "198.51.100.1").status_code == 200
    assert _sign_in(api, "MARTA", "wrong", attacker).status_code == 429
    clock.set(clock.now + timedelta(seconds=600))
    assert _sign_in(api, "marta", PASSWORD, attacker).headers["retry-after"] == "300"
    clock.set(clock.now + timedelta(seconds=301))
    assert _sign_in(api, "marta", PASSWORD, attacker).status_code == 200
    # That success forgave the name's failures from there; the address keeps its count of others.
    assert _sign_in(api, "marta", "wrong", attacker).status_code == 401
    names = [_sign_in(api, f"guess{n}", "wrong", attacker).status_code for n in range(20)]
    assert names == [401] * 19 + [429]
    # Without an address given, the caller's own is counted.
    assert _sign_in(api, "marta", "wrong").status_code == 401
    failed = api.get(f"{A}/audit", params={"action": "admin.sign_in_failed"}, headers=ADMIN).json()["items"]
    assert failed[0]["client_ip"] == "testclient" and failed[1]["client_ip"] == attacker


def test_sign_ins_at_the_same_moment_cannot_slip_under_the_limit(database_url: str) -> None:
    with serve_validator(database_url, panel_signin_max_failures=3) as validator:
        created = httpx.post(
            f"{validator.url}{A}/admins", json={"username": "marta", "password": PASSWORD}, headers=ADMIN
        )
        assert created.status_code == 201, created.text

        def guess(_: int) -> int:
            body = {"username": "marta", "password": "wrong", "client_address": "203.0.113.77"}
            return httpx.post(f"{validator.url}{A}/sessions", json=body, headers=ADMIN, timeout=30).status_code

        with ThreadPoolExecutor(12) as pool:
            codes = sorted(pool.map(guess, range(12)))
    assert codes == [401] * 3 + [429] * 9


def test_ended_sessions_and_old_failures_are_pruned(api: TestClient, clock: FixedClock, db: Database) -> None:
    _admins(api, "marta")
    _session(api, "marta")
    _sign_in(api, "marta", "wrong", "203.0.113.5")

    def counts() -> tuple[int, int]:
        with db.engine.connect() as connection:
            sessions = connection.execute(select(func.count()).select_from(PanelSession)).scalar_one()
            attempts = connection.execute(select(func.count()).select_from(SignInAttempt)).scalar_one()
        return int(sessions), int(attempts)

    def prune() -> None:
        prune_once(db.engine, clock(), refusal_retention=timedelta(days=90), sign_in_window=timedelta(seconds=900))

    prune()
    assert counts() == (1, 1)
    clock.set(clock.now + timedelta(seconds=901))
    prune()
    assert counts() == (1, 0)
    clock.set(clock.now + timedelta(minutes=480))
    prune()
    assert counts() == (0, 0)
