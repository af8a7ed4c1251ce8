"""Tokens through the panel: create (shown once), list, restrict, grant, revoke, usage, refusals, audit."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.token_panel.support import ADMIN, csrf_of, post_form, unique
from tests.token_validator.support import SERVICE_KEY, RunningValidator


def _new_token_form(admin: TestClient) -> dict[str, str]:
    page = admin.get("/tokens/new")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    return {"csrf": csrf_of(page.text), "nonce": nonce.group(1)}


def _create_token(admin: TestClient, **fields: Any) -> tuple[str, int, httpx.Response]:
    form = {**_new_token_form(admin), "actions": "*", "restriction": "unlimited", **fields}
    shown = admin.post("/tokens", data=form)
    assert shown.status_code == 200, shown.text
    plaintext = re.search(r'id="plaintext" class="mono" value="([^"]+)"', shown.text)
    token_id = re.search(r'href="/tokens/(\d+)"', shown.text)
    assert plaintext and token_id
    return plaintext.group(1), int(token_id.group(1)), shown


def _use(validator: RunningValidator, token: str, action: str = "sms.send") -> str:
    answer = httpx.post(
        f"{validator.url}/v1/validate",
        json={"token": token, "action": action},
        headers={"Authorization": f"Bearer {SERVICE_KEY}"},
    )
    code: str = answer.json()["code"]
    return code


def test_the_new_token_is_shown_once_with_a_warning_and_a_copy_button(admin: TestClient) -> None:
    owner = unique("app")
    post_form(admin, "/applications", {"name": owner})
    form = {**_new_token_form(admin), "kind": "application", "owner": owner, "actions": "*", "restriction": "unlimited"}
    shown = admin.post("/tokens", data=form)
    plaintext = re.search(r'value="(app_[A-Za-z0-9_-]{32,})"', shown.text)
    assert shown.status_code == 200 and plaintext
    assert "It is shown only this once" in shown.text and 'data-copy="plaintext"' in shown.text
    assert shown.headers["cache-control"] == "no-store"
    # The same form sent again (back button, double click) makes nothing and shows nothing.
    again = admin.post("/tokens", data=form)
    assert again.status_code == 409 and "already sent" in again.text
    assert plaintext.group(1) not in again.text
    assert "app_" not in again.text
    assert admin.get("/tokens", params={"q": owner}).text.count('href="/tokens/') == 1


def test_token_form_errors_are_shown_next_to_the_fields(admin: TestClient) -> None:
    owner = unique("ana")
    post_form(admin, "/users", {"name": owner})
    base = {"kind": "user", "owner": owner, "actions": "sms.send", "restriction": "monthly"}
    missing_limit = admin.post("/tokens", data={**_new_token_form(admin), **base})
    assert missing_limit.status_code == 422 and 'id="limit-error"' in missing_limit.text
    assert f'value="{owner}"' in missing_limit.text, "what was typed is kept"
    past = {**base, "limit": "3", "expires": "2001-01-01T00:00"}
    assert "Choose a moment in the future" in admin.post("/tokens", data={**_new_token_form(admin), **past}).text
    nobody = {**base, "limit": "3", "owner": unique("nobody")}
    assert "There is no user with this name." in admin.post("/tokens", data={**_new_token_form(admin), **nobody}).text
    no_actions = {**base, "limit": "3", "actions": ""}
    assert "Choose at least one action." in admin.post("/tokens", data={**_new_token_form(admin), **no_actions}).text


def test_list_shows_prefix_kind_owner_restriction_and_use(admin: TestClient, validator: RunningValidator) -> None:
    owner = unique("luz")
    post_form(admin, "/users", {"name": owner})
    expires = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    plaintext, token_id, _ = _create_token(
        admin, kind="user", owner=owner, actions="sms.send", restriction="monthly", limit="3", expires=expires
    )
    assert [_use(validator, plaintext) for _ in range(2)] == ["ok", "ok"]
    assert _use(validator, plaintext, "email.send") == "action_forbidden"
    listed = admin.get("/tokens", params={"q": plaintext[:8]}).text
    row = listed[listed.index(f'href="/tokens/{token_id}"') :]
    row = row[: row.index("</tr>")]
    for expected in (plaintext[:8] + "…", ">user<", f">{owner}<", "3 per month", "2 / 3", ">1<", "active"):
        assert expected in row, expected
    assert re.search(r"\d{4}-\d{2}-01 00:00", row), "the reset date"
    detail = admin.get(f"/tokens/{token_id}").text
    assert "action_forbidden" in detail and expires.replace("T", " ") in detail


def test_restriction_grant_and_revoke(admin: TestClient, validator: RunningValidator) -> None:
    owner = unique("svc")
    post_form(admin, "/applications", {"name": owner})
    plaintext, token_id, _ = _create_token(admin, kind="application", owner=owner, restriction="max_uses", limit="1")
    assert [_use(validator, plaintext) for _ in range(2)] == ["ok", "usage_exhausted"]
    granted = post_form(admin, f"/tokens/{token_id}/grant", {"grant": "2"})
    assert "Granted 2 more uses" in admin.get(granted.headers["location"]).text
    assert [_use(validator, plaintext) for _ in range(3)] == ["ok", "ok", "usage_exhausted"]
    post_form(admin, f"/tokens/{token_id}/restriction", {"restriction": "monthly", "limit": "10"})
    page = admin.get(f"/tokens/{token_id}").text
    assert "The restriction is changed." in page and "10 per month" in page
    assert _use(validator, plaintext) == "ok"
    unlimited = post_form(admin, f"/tokens/{token_id}/restriction", {"restriction": "unlimited"})
    refused = post_form(admin, f"/tokens/{token_id}/grant", {"grant": "1"})
    assert unlimited.status_code == 303 and "unlimited" in admin.get(refused.headers["location"]).text
    confirm = admin.get(f"/tokens/{token_id}/revoke")
    assert "cannot be brought back" in confirm.text
    revoked = post_form(admin, f"/tokens/{token_id}/revoke", {})
    page = admin.get(revoked.headers["location"]).text
    assert "is revoked" in page and "badge-revoked" in page and "Change restriction" not in page
    assert _use(validator, plaintext) == "token_revoked"


def test_usage_charts_per_day_and_month(admin: TestClient, validator: RunningValidator) -> None:
    owner = unique("chart")
    post_form(admin, "/applications", {"name": owner})
    plaintext, token_id, _ = _create_token(admin, kind="application", owner=owner)
    for _ in range(4):
        assert _use(validator, plaintext) == "ok"
    page = admin.get(f"/tokens/{token_id}/usage")
    assert page.status_code == 200
    assert page.text.count("<svg") == 2 and "4 uses in all" in page.text
    days = re.findall(r'<rect class="bar"[^>]*><title>(\d{2}): (\d+) uses?</title>', page.text)
    assert 28 <= len(days) <= 31 and sum(int(uses) for _, uses in days) == 4
    months = re.findall(r'<rect class="bar"[^>]*><title>(\d{4}-\d{2}): (\d+) uses?</title>', page.text)
    assert len(months) == 12 and int(months[-1][1]) == 4
    earlier = admin.get(f"/tokens/{token_id}/usage", params={"month": "2020-02"})
    assert "0 uses in 2020-02" in earlier.text and len(re.findall(r'<rect class="bar"', earlier.text)) == 29 + 12
    assert admin.get(f"/tokens/{token_id}/usage", params={"month": "2020-13"}).status_code == 400
    summary = admin.get("/usage").text
    assert f'href="/tokens/{token_id}"' in summary


def test_refusals_filtered_by_token_code_and_time(admin: TestClient, validator: RunningValidator) -> None:
    owner = unique("ref")
    post_form(admin, "/users", {"name": owner})
    plaintext, token_id, _ = _create_token(admin, kind="user", owner=owner, restriction="monthly", limit="1")
    assert [_use(validator, plaintext) for _ in range(2)] == ["ok", "monthly_quota_exhausted"]
    by_id = admin.get("/refusals", params={"token": token_id}).text
    assert "monthly_quota_exhausted" in by_id and plaintext[:8] in by_id
    by_prefix = admin.get("/refusals", params={"token": plaintext[:8], "code": "monthly_quota_exhausted"}).text
    assert by_prefix.count("<code>monthly_quota_exhausted</code>") >= 1
    other_code = admin.get("/refusals", params={"token": token_id, "code": "token_revoked"}).text
    assert "No refusal matches these filters." in other_code
    future = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No refusal matches" in admin.get("/refusals", params={"token": token_id, "since": future}).text
    backwards = admin.get("/refusals", params={"since": future, "until": "2001-01-01T00:00"})
    assert backwards.status_code == 422 and "The end comes before the start." in backwards.text
    assert admin.get("/refusals", params={"since": "soon"}).status_code == 422


def test_audit_trail_names_the_admin_who_acted(admin: TestClient) -> None:
    name = unique("audited")
    post_form(admin, "/groups", {"name": name})
    trail = admin.get("/audit", params={"action": "group.create", "actor": ADMIN}).text
    assert name in trail and f">{ADMIN}<" in trail
    assert "Nothing recorded for these filters." in admin.get("/audit", params={"actor": unique("nobody")}).text


def test_junk_presented_as_a_token_is_one_counted_refusal(admin: TestClient, validator: RunningValidator) -> None:
    for attempt in range(2):  # again if a minute turned over between the calls
        client_ip = f"192.0.2.{attempt + 70}"
        started = datetime.now().replace(second=0, microsecond=0)
        for _ in range(3):
            httpx.post(
                f"{validator.url}/v1/validate",
                json={"token": unique("junk"), "action": "sms.send", "client_ip": client_ip},
                headers={"Authorization": f"Bearer {SERVICE_KEY}"},
            ).raise_for_status()
        if datetime.now().replace(second=0, microsecond=0) == started:
            break
    page = admin.get("/refusals", params={"code": "invalid_token"}).text
    row = next(r for r in page.split("<tr>") if client_ip in r)
    assert "× 3" in row


def test_a_rate_limit_is_set_on_the_form_changed_and_removed(admin: TestClient, validator: RunningValidator) -> None:
    owner = unique("rated")
    post_form(admin, "/applications", {"name": owner})
    plaintext, token_id, _ = _create_token(admin, kind="application", owner=owner, rate_limit="2", rate_per="minute")
    assert "at most 2 per minute" in admin.get(f"/tokens/{token_id}").text
    assert [_use(validator, plaintext) for _ in range(3)] == ["ok", "ok", "rate_limited"]
    changed = post_form(admin, f"/tokens/{token_id}/rate", {"rate_limit": "50", "rate_per": "second"})
    assert "At most 50 per second now." in admin.get(changed.headers["location"]).text
    assert _use(validator, plaintext) == "ok"
    bad = post_form(admin, f"/tokens/{token_id}/rate", {"rate_limit": "0", "rate_per": "second"})
    assert "Enter a whole number from 1 to 1,000,000." in admin.get(bad.headers["location"]).text
    removed = post_form(admin, f"/tokens/{token_id}/rate", {"rate_limit": "", "rate_per": "second"})
    page = admin.get(removed.headers["location"]).text
    assert "The rate limit is removed." in page and "no rate limit" in page
    form = {**_new_token_form(admin), "kind": "application", "owner": owner, "actions": "*", "restriction": "unlimited"}
    too_many = admin.post("/tokens", data={**form, "rate_limit": "2000000", "rate_per": "second"})
    assert too_many.status_code == 422 and 'id="rate_limit-error"' in too_many.text


def test_a_group_rate_limit_is_set_on_the_group_page(admin: TestClient, validator: RunningValidator) -> None:
    group = unique("equipo")
    created = post_form(admin, "/groups", {"name": group})
    group_page = created.headers["location"]
    group_id = int(group_page.rsplit("/", 1)[-1])
    done = post_form(admin, f"/groups/{group_id}/rate", {"rate_limit": "1", "rate_per": "minute"})
    page = admin.get(done.headers["location"]).text
    assert "At most 1 per minute now." in page and "shared by the group" in page
    plaintext, _, _ = _create_token(admin, kind="group", owner=group)
    assert [_use(validator, plaintext) for _ in range(2)] == ["ok", "rate_limited"]
