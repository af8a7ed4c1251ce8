"""Signing in and out through the validator's admin API; cookies, rate limit, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from cartero_common.clock import FixedClock
from tests.token_panel.support import (
    ADMIN,
    MAX_FAILURES,
    PASSWORD,
    MessageLogDb,
    create_admin,
    csrf_of,
    live_session,
    panel_client,
    panel_settings,
    post_form,
    session_id_of,
    sign_in,
)
from tests.token_validator.support import ADMIN_KEY, RunningValidator, serve_validator
from token_panel.sessions import SESSION_COOKIE


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[-1]


def test_sign_in_sets_a_signed_httponly_lax_cookie_that_expires(anonymous: TestClient) -> None:
    response = sign_in(anonymous)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = _set_cookie(response, SESSION_COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "max-age=28800" in cookie  # the validator's PANEL_SESSION_MINUTES=480
    home = anonymous.get("/")
    assert home.status_code == 200 and f">{ADMIN}<" in home.text and "Signed in as ana." in home.text


def test_secure_cookies_behind_https(validator: RunningValidator, message_log: MessageLogDb) -> None:
    with panel_client(panel_settings(validator.url, message_log.url, panel_cookie_secure=True)) as client:
        assert "secure" in _set_cookie(client.get("/signin"), SESSION_COOKIE).lower()


def test_wrong_password_is_refused_and_audited(anonymous: TestClient, validator: RunningValidator) -> None:
    response = sign_in(anonymous, password="not the password")
    assert response.status_code == 401 and "Wrong username or password." in response.text
    assert anonymous.get("/").status_code == 303
    audit = httpx.get(
        f"{validator.url}/v1/admin/audit",
        params={"action": "admin.sign_in_failed"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert audit["total"] >= 1


def test_failed_sign_ins_are_rate_limited(throttled_validator: RunningValidator, message_log: MessageLogDb) -> None:
    settings = panel_settings(throttled_validator.url, message_log.url)
    with panel_client(settings, address="198.51.100.11") as client:
        for _ in range(MAX_FAILURES):
            assert sign_in(client, password="guess").status_code == 401
        # Now even the right password waits: the validator checks no password at all.
        blocked = sign_in(client)
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
        assert 0 < int(blocked.headers["retry-after"]) <= 900
        assert client.get("/").status_code == 303
    # The same admin from another address is not locked out.
    with panel_client(settings, address="198.51.100.12") as elsewhere:
        assert sign_in(elsewhere).status_code == 303


def test_a_too_long_username_is_a_failed_sign_in_audited_and_throttled(
    throttled_validator: RunningValidator, message_log: MessageLogDb
) -> None:
    name = "n" * 70  # longer than an admin's username may be: the validator answers 422
    before = _failed_sign_ins(throttled_validator)
    settings = panel_settings(throttled_validator.url, message_log.url)
    with panel_client(settings, address="198.51.100.13") as client:
        for _ in range(MAX_FAILURES):
            refused = sign_in(client, username=name)
            assert refused.status_code == 401 and "Wrong username or password." in refused.text
        blocked = sign_in(client, username=name)
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
    assert _failed_sign_ins(throttled_validator) == before + MAX_FAILURES


def _failed_sign_ins(validator: RunningValidator) -> int:
    audit = httpx.get(
        f"{validator.url}/v1/admin/audit",
        params={"action": "admin.sign_in_failed"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    total: int = audit["total"]
    return total


def test_sign_in_needs_the_forms_csrf_token(anonymous: TestClient) -> None:
    anonymous.get("/signin")
    refused = anonymous.post("/signin", data={"username": ADMIN, "password": PASSWORD})
    assert refused.status_code == 403 and "Form refused" in refused.text
    forged = anonymous.post("/signin", data={"username": ADMIN, "password": PASSWORD, "csrf": "guessed"})
    assert forged.status_code == 403
    assert anonymous.get("/").status_code == 303


def test_sign_out_ends_the_session_even_for_a_copied_cookie(admin: TestClient) -> None:
    copied = admin.cookies.get(SESSION_COOKIE)
    assert copied
    out = post_form(admin, "/signout", {})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert admin.get("/tokens").status_code == 303
    assert "You are signed out." in admin.get("/signin").text
    admin.cookies.set(SESSION_COOKIE, copied)
    replay = admin.get("/tokens")
    assert replay.status_code == 303 and replay.headers["location"] == "/signin?next=%2Ftokens"


def test_sessions_expire(tmp_path: Path, message_log: MessageLogDb) -> None:
    """The validator ends a session PANEL_SESSION_MINUTES after sign-in; the cookie ends with it."""
    clock = FixedClock(datetime.now(UTC))
    database = f"sqlite:///{tmp_path}/token_validator.db"
    with serve_validator(database, clock=clock, panel_session_minutes=30) as validator:
        create_admin(validator.url)
        with panel_client(panel_settings(validator.url, message_log.url), clock) as client:
            signed_in = sign_in(client)
            assert signed_in.status_code == 303
            assert "max-age=1800" in _set_cookie(signed_in, SESSION_COOKIE).lower()
            clock.set(clock.now + timedelta(minutes=29))
            assert client.get("/tokens").status_code == 200
            session_id = session_id_of(client.cookies[SESSION_COOKIE])
            assert live_session(validator.url, session_id) is not None
            clock.set(clock.now + timedelta(minutes=2))
            assert client.get("/tokens").status_code == 303
            # Ended by the validator, not only by the cookie's own end.
            assert live_session(validator.url, session_id) is None


def test_after_sign_in_the_admin_lands_where_they_were_going(anonymous: TestClient) -> None:
    bounced = anonymous.get("/refusals?code=token_revoked")
    assert bounced.status_code == 303 and bounced.headers["location"] == "/signin?next=%2Frefusals"
    page = anonymous.get(bounced.headers["location"])
    data = {"csrf": csrf_of(page.text), "username": ADMIN, "password": PASSWORD, "next": "/refusals"}
    assert anonymous.post("/signin", data=data).headers["location"] == "/refusals"
    anonymous.cookies.clear()
    page = anonymous.get("/signin")
    data = {**data, "csrf": csrf_of(page.text), "next": "//evil.example/x"}
    assert anonymous.post("/signin", data=data).headers["location"] == "/"


def test_a_signed_in_admin_skips_the_sign_in_page(admin: TestClient) -> None:
    assert admin.get("/signin?next=/users").headers["location"] == "/users"


def test_validator_down_is_a_clear_503(message_log: MessageLogDb) -> None:
    from tests.support import free_port

    settings = panel_settings(f"http://127.0.0.1:{free_port()}", message_log.url)
    with panel_client(settings) as client:
        response = sign_in(client)
        assert response.status_code == 503 and "token validator is not answering" in response.text
