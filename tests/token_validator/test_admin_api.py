"""The admin API as the panel uses it: owners, membership, tokens, usage, refusals, audit, sign-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import ADMIN, validate

A = "/v1/admin"


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def _token(api: TestClient, **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = _ok(api.post(f"{A}/tokens", json=body, headers=ADMIN), 201)
    return created


def test_applications_crud_search_pagination_and_delete(api: TestClient) -> None:
    for name in ("Facturas", "Avisos", "Alertas", "Nóminas", "Web"):
        _ok(api.post(f"{A}/applications", json={"name": name}, headers=ADMIN), 201)
    _problem(api.post(f"{A}/applications", json={"name": "Web"}, headers=ADMIN), 409, "name_taken")
    page = _ok(api.get(f"{A}/applications", params={"per_page": 2, "page": 2}, headers=ADMIN))
    assert page["total"] == 5 and [a["name"] for a in page["items"]] == ["Facturas", "Nóminas"]
    found = _ok(api.get(f"{A}/applications", params={"q": "AL"}, headers=ADMIN))
    assert [a["name"] for a in found["items"]] == ["Alertas"]
    assert _ok(api.get(f"{A}/applications", params={"q": "%"}, headers=ADMIN))["total"] == 0
    web = found_web = _ok(api.get(f"{A}/applications", params={"q": "web"}, headers=ADMIN))["items"][0]
    renamed = _ok(api.patch(f"{A}/applications/{web['id']}", json={"name": "Portal"}, headers=ADMIN))
    assert renamed["name"] == "Portal" and found_web["tokens"] == 0
    _problem(api.patch(f"{A}/applications/{web['id']}", json={"name": "Avisos"}, headers=ADMIN), 409, "name_taken")

    token = _token(api, kind="application", owner_id=web["id"], actions=["sms.send"])
    _ok(api.patch(f"{A}/applications/{web['id']}", json={"disabled": True}, headers=ADMIN))
    assert validate(api, token["token"])["code"] == "subject_disabled"
    _ok(api.patch(f"{A}/applications/{web['id']}", json={"disabled": False}, headers=ADMIN))
    assert validate(api, token["token"])["allowed"]
    assert _ok(api.get(f"{A}/applications", params={"disabled": False}, headers=ADMIN))["total"] == 5

    _problem(api.delete(f"{A}/applications/{web['id']}", headers=ADMIN), 409, "has_tokens")
    _ok(api.delete(f"{A}/applications/{web['id']}", params={"cascade": True}, headers=ADMIN), 204)
    _problem(api.get(f"{A}/applications/{web['id']}", headers=ADMIN), 404, "not_found")
    assert validate(api, token["token"])["code"] == "invalid_token"


def test_groups_users_membership_and_group_quota(api: TestClient) -> None:
    group = _ok(
        api.post(f"{A}/groups", json={"name": "ventas", "quota": {"type": "monthly", "limit": 3}}, headers=ADMIN), 201
    )
    assert group["quota"] == {
        "type": "monthly",
        "limit": 3,
        "used": 0,
        "remaining": 3,
        "reset_at": "2026-04-01T00:00:00+02:00",
    }
    luis = _ok(api.post(f"{A}/users", json={"name": "luis"}, headers=ADMIN), 201)
    _ok(api.put(f"{A}/groups/{group['id']}/members/{luis['id']}", headers=ADMIN), 204)
    _ok(api.put(f"{A}/groups/{group['id']}/members/{luis['id']}", headers=ADMIN), 204)  # twice is fine
    assert _ok(api.get(f"{A}/users/{luis['id']}", headers=ADMIN))["groups"] == [{"id": group["id"], "name": "ventas"}]
    members = _ok(api.get(f"{A}/groups/{group['id']}/members", headers=ADMIN))
    assert [m["name"] for m in members["items"]] == ["luis"]

    token = _token(api, kind="user", owner_id=luis["id"], actions=["sms.send", "email.send"])["token"]
    assert [validate(api, token)["allowed"] for _ in range(4)] == [True, True, True, False]
    topped = _ok(api.post(f"{A}/groups/{group['id']}/quota/remaining", json={"grant": 2}, headers=ADMIN))
    assert topped["quota"]["remaining"] == 2
    assert validate(api, token)["allowed"]
    _ok(api.put(f"{A}/groups/{group['id']}/quota", json={"type": "unlimited"}, headers=ADMIN))
    _problem(api.post(f"{A}/groups/{group['id']}/quota/remaining", json={"set": 1}, headers=ADMIN), 409, "not_limited")
    _ok(api.delete(f"{A}/groups/{group['id']}/members/{luis['id']}", headers=ADMIN), 204)
    _problem(api.delete(f"{A}/groups/{group['id']}/members/{luis['id']}", headers=ADMIN), 404, "not_found")
    _problem(api.delete(f"{A}/users/{luis['id']}", headers=ADMIN), 409, "has_tokens")
    _ok(api.delete(f"{A}/users/{luis['id']}", params={"cascade": "true"}, headers=ADMIN), 204)
    _ok(api.delete(f"{A}/groups/{group['id']}", headers=ADMIN), 204)


def test_tokens_created_listed_revoked_restricted_and_topped_up(api: TestClient, clock: FixedClock) -> None:
    app = _ok(api.post(f"{A}/applications", json={"name": "crm"}, headers=ADMIN), 201)
    created = _token(
        api,
        kind="application",
        owner_id=app["id"],
        actions=["email.send", "sms.send"],
        restriction={"type": "max_uses", "limit": 2},
        name="CRM nightly",
        expires_at="2026-12-31T23:59:59",
    )
    assert created["token"].startswith("app_") and created["prefix"] == created["token"][:8]
    assert created["expires_at"] == "2026-12-31T23:59:59+01:00"  # read in TIMEZONE
    assert created["owner"] == {"type": "application", "id": app["id"], "name": "crm"}
    shown = _ok(api.get(f"{A}/tokens/{created['id']}", headers=ADMIN))
    assert "token" not in shown and shown["restriction"]["remaining"] == 2 and shown["status"] == "active"

    validate(api, created["token"], "email.send")
    validate(api, created["token"], "email.send")
    assert validate(api, created["token"], "email.send")["code"] == "usage_exhausted"
    granted = _ok(api.post(f"{A}/tokens/{created['id']}/remaining", json={"grant": 3}, headers=ADMIN))
    assert granted["restriction"]["remaining"] == 3 and granted["last_used_at"] is not None
    set_to = _ok(api.post(f"{A}/tokens/{created['id']}/remaining", json={"set": 1}, headers=ADMIN))
    assert set_to["restriction"]["remaining"] == 1
    monthly = _ok(
        api.put(f"{A}/tokens/{created['id']}/restriction", json={"type": "monthly", "limit": 10}, headers=ADMIN)
    )
    assert monthly["restriction"]["remaining"] == 10 and monthly["restriction"]["reset_at"]
    _problem(
        api.post(f"{A}/tokens/{created['id']}/remaining", json={"set": 1, "grant": 1}, headers=ADMIN),
        422,
        "invalid_request",
    )

    other = _token(api, kind="application", owner_id=app["id"], actions=["*"])
    _problem(api.post(f"{A}/tokens/{other['id']}/remaining", json={"grant": 1}, headers=ADMIN), 409, "not_limited")
    revoked = _ok(api.post(f"{A}/tokens/{other['id']}/revoke", headers=ADMIN))
    assert revoked["status"] == "revoked" and validate(api, other["token"])["code"] == "token_revoked"

    listing = _ok(api.get(f"{A}/tokens", params={"kind": "application", "owner_id": app["id"]}, headers=ADMIN))
    assert [t["id"] for t in listing["items"]] == [other["id"], created["id"]]
    assert _ok(api.get(f"{A}/tokens", params={"status": "revoked"}, headers=ADMIN))["total"] == 1
    assert _ok(api.get(f"{A}/tokens", params={"q": "nightly"}, headers=ADMIN))["items"][0]["id"] == created["id"]
    clock.set(clock() + timedelta(days=400))
    assert _ok(api.get(f"{A}/tokens", params={"status": "expired"}, headers=ADMIN))["total"] == 1
    _problem(api.get(f"{A}/tokens", params={"owner_id": 1}, headers=ADMIN), 422, "invalid_request")


def test_usage_per_day_and_per_month(api: TestClient, clock: FixedClock) -> None:
    app = _ok(api.post(f"{A}/applications", json={"name": "stats"}, headers=ADMIN), 201)
    token = _token(api, kind="application", owner_id=app["id"], actions=["*"])
    for _ in range(3):
        validate(api, token["token"])
    refunded = validate(api, token["token"])["usage_id"]
    api.post(f"/v1/usage/{refunded}/refund", headers={"Authorization": "Bearer service-key-for-tests-0123456789"})
    clock.set(clock() + timedelta(days=31))  # April
    validate(api, token["token"])
    march = _ok(api.get(f"{A}/tokens/{token['id']}/usage", params={"month": "2026-03"}, headers=ADMIN))
    assert march["total"] == 3 and len(march["days"]) == 31
    assert {"day": "2026-03-10", "uses": 3} in march["days"]
    months = _ok(api.get(f"{A}/tokens/{token['id']}/usage/months", headers=ADMIN))["months"]
    assert len(months) == 12 and months[-2:] == [{"month": "2026-03", "uses": 3}, {"month": "2026-04", "uses": 1}]
    summary = _ok(api.get(f"{A}/usage", params={"month": "2026-03"}, headers=ADMIN))
    assert summary["tokens"] == [{"token_id": token["id"], "prefix": token["prefix"], "uses": 3}]
    _problem(
        api.get(f"{A}/tokens/{token['id']}/usage", params={"month": "2026-13"}, headers=ADMIN), 422, "invalid_request"
    )


def test_audit_trail_names_the_admin_and_never_a_token(api: TestClient) -> None:
    app = _ok(api.post(f"{A}/applications", json={"name": "audited"}, headers=ADMIN), 201)
    token = _token(api, kind="application", owner_id=app["id"], actions=["*"])
    _ok(api.post(f"{A}/tokens/{token['id']}/revoke", headers=ADMIN))
    trail = api.get(f"{A}/audit", params={"actor": "ana.admin"}, headers=ADMIN)
    assert token["token"] not in trail.text and token["token"][8:] not in trail.text
    actions = [e["action"] for e in trail.json()["items"]]
    assert actions == ["token.revoke", "token.create", "application.create"]
    only = _ok(api.get(f"{A}/audit", params={"action": "token.create"}, headers=ADMIN))["items"][0]
    assert only["details"]["prefix"] == token["prefix"] and only["target_id"] == str(token["id"])
    anonymous = {"Authorization": ADMIN["Authorization"]}
    _ok(api.post(f"{A}/users", json={"name": "sin-nombre"}, headers=anonymous), 201)
    assert (
        _ok(api.get(f"{A}/audit", params={"action": "user.create"}, headers=ADMIN))["items"][0]["actor"] == "admin-key"
    )
    bad_actor = {**ADMIN, "X-Cartero-Admin": "robert'); DROP TABLE admins;--"}
    _problem(api.post(f"{A}/users", json={"name": "x"}, headers=bad_actor), 422, "invalid_request")


def test_admin_accounts_and_sign_in(api: TestClient) -> None:
    _ok(api.post(f"{A}/admins", json={"username": "marta", "password": "correct horse battery"}, headers=ADMIN), 201)
    _problem(
        api.post(f"{A}/admins", json={"username": "marta", "password": "another long one"}, headers=ADMIN),
        409,
        "name_taken",
    )
    _problem(
        api.post(f"{A}/admins", json={"username": "short", "password": "short"}, headers=ADMIN), 422, "invalid_request"
    )
    signed = _ok(
        api.post(f"{A}/sessions", json={"username": "marta", "password": "correct horse battery"}, headers=ADMIN)
    )
    assert signed["username"] == "marta"
    _problem(
        api.post(f"{A}/sessions", json={"username": "marta", "password": "wrong"}, headers=ADMIN),
        401,
        "invalid_credentials",
    )
    _problem(
        api.post(f"{A}/sessions", json={"username": "nobody", "password": "wrong"}, headers=ADMIN),
        401,
        "invalid_credentials",
    )
    _ok(api.put(f"{A}/admins/marta/password", json={"password": "a new long password"}, headers=ADMIN), 204)
    _ok(api.post(f"{A}/sessions", json={"username": "marta", "password": "a new long password"}, headers=ADMIN))
    listed = _ok(api.get(f"{A}/admins", headers=ADMIN))
    assert [a["username"] for a in listed] == ["marta"] and listed[0]["last_sign_in_at"]
    assert "password" not in str(listed)
    _problem(api.delete(f"{A}/admins/marta", headers=ADMIN), 409, "last_admin")
    failed = _ok(api.get(f"{A}/audit", params={"action": "admin.sign_in_failed"}, headers=ADMIN))
    assert failed["total"] == 2


def _audit(api: TestClient, action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = _ok(api.get(f"{A}/audit", params={"action": action}, headers=ADMIN))["items"]
    return found


def test_a_failed_sign_in_is_by_anonymous_and_names_what_was_typed(api: TestClient) -> None:
    _ok(api.post(f"{A}/admins", json={"username": "marta", "password": "correct horse battery"}, headers=ADMIN), 201)
    for typed in ("marta", "nobody"):
        body = {"username": typed, "password": "wrong"}
        _problem(api.post(f"{A}/sessions", json=body, headers=ADMIN), 401, "invalid_credentials")
    failed = _audit(api, "admin.sign_in_failed")
    assert [(e["actor"], e["target_id"], e["details"]) for e in failed] == [
        ("anonymous", None, {"username": "nobody"}),
        ("anonymous", None, {"username": "marta"}),
    ]
    assert _ok(api.get(f"{A}/audit", params={"actor": "marta"}, headers=ADMIN))["total"] == 0
    _ok(api.post(f"{A}/sessions", json={"username": "marta", "password": "correct horse battery"}, headers=ADMIN))
    signed = _audit(api, "admin.sign_in")
    assert [(e["actor"], e["target_id"]) for e in signed] == [("marta", "marta")]


def test_usernames_longer_than_the_audit_trail_holds_are_422_and_audited(api: TestClient) -> None:
    fits = "m" * 64
    _ok(api.post(f"{A}/admins", json={"username": fits, "password": "correct horse battery"}, headers=ADMIN), 201)
    _ok(api.post(f"{A}/sessions", json={"username": fits, "password": "correct horse battery"}, headers=ADMIN))
    for length in (65, 100):
        name = "m" * length
        created = api.post(f"{A}/admins", json={"username": name, "password": "correct horse battery"}, headers=ADMIN)
        _problem(created, 422, "invalid_request")
        signed = api.post(f"{A}/sessions", json={"username": name, "password": "correct horse battery"}, headers=ADMIN)
        _problem(signed, 422, "invalid_request")
        assert signed.json()["errors"][0]["field"] == "username"
    failed = _audit(api, "admin.sign_in_failed")
    assert [e["details"]["username"] for e in failed] == ["m" * 100, "m" * 65]
    assert [a["username"] for a in _ok(api.get(f"{A}/admins", headers=ADMIN))] == [fits]


def test_the_panel_records_a_dead_letter_action_with_its_ids_and_count(api: TestClient) -> None:
    body = {"action": "dead_letters.replay", "queue": "cola_sms.dlq", "ids": ["m-1", "m-2"], "count": 2}
    _ok(api.post(f"{A}/audit", json=body, headers=ADMIN), 204)
    found = _ok(api.get(f"{A}/audit", params={"action": "dead_letters.replay"}, headers=ADMIN))["items"][0]
    assert found["actor"] == "ana.admin" and found["target_id"] == "cola_sms.dlq"
    assert found["details"]["ids"] == ["m-1", "m-2"] and found["details"]["count"] == 2
    for bad in (
        {**body, "action": "token.revoke"},
        {**body, "queue": "cola_sms"},
        {**body, "count": "2"},
        {**body, "extra": 1},
        {k: v for k, v in body.items() if k != "ids"},
    ):
        _problem(api.post(f"{A}/audit", json=bad, headers=ADMIN), 422, "invalid_request")
    _problem(api.post(f"{A}/audit", json=body, headers={"X-Cartero-Admin": "x"}), 401, "unauthorized")


def test_a_dead_letter_record_says_when_its_ids_were_cut_or_the_replay_stopped(api: TestClient) -> None:
    body = {"action": "dead_letters.discard", "queue": "logs.dlq", "ids": ["m-1"], "count": 1}
    _ok(api.post(f"{A}/audit", json=body, headers=ADMIN), 204)
    plain = _ok(api.get(f"{A}/audit", params={"action": "dead_letters.discard"}, headers=ADMIN))["items"][0]
    assert plain["details"]["ids_truncated"] is False and plain["details"]["unconfirmed"] is False
    flagged = {**body, "count": 5000, "ids_truncated": True, "unconfirmed": True}
    _ok(api.post(f"{A}/audit", json=flagged, headers=ADMIN), 204)
    found = _ok(api.get(f"{A}/audit", params={"action": "dead_letters.discard"}, headers=ADMIN))["items"][0]
    assert found["details"]["count"] == 5000
    assert found["details"]["ids_truncated"] is True and found["details"]["unconfirmed"] is True
    for bad in ({**body, "ids_truncated": "yes"}, {**body, "unconfirmed": 1}):
        _problem(api.post(f"{A}/audit", json=bad, headers=ADMIN), 422, "invalid_request")
