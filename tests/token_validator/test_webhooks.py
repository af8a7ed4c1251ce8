"""Webhook endpoints: the admin API that registers them and the read API the delivery side uses."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import ADMIN, SERVICE
from tests.token_validator.support import ADMIN_KEY, settings_for
from token_validator.__main__ import key_problems
from token_validator.app import create_app
from token_validator.db import Database

A = "/v1/admin"
WEBHOOKS_KEY = "webhooks-key-for-tests-5555555555"
READER = {"Authorization": f"Bearer {WEBHOOKS_KEY}"}
PUBLIC_URL = "https://93.184.215.14/hooks/cartero"


@pytest.fixture
def hooks_api(database_url: str, db: Database, clock: FixedClock) -> Iterator[TestClient]:
    settings = settings_for(database_url, validator_webhooks_key=WEBHOOKS_KEY)
    with TestClient(create_app(settings, clock=clock, db=db)) as client:
        yield client


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _owner(api: TestClient, kind: str, name: str) -> int:
    return int(_ok(api.post(f"{A}/{kind}s", json={"name": name}, headers=ADMIN), 201)["id"])


def _hook(api: TestClient, owner_type: str, owner_id: int, **extra: Any) -> dict[str, Any]:
    body = {"owner_type": owner_type, "owner_id": owner_id, "url": PUBLIC_URL, "events": ["message.sent"], **extra}
    created: dict[str, Any] = _ok(api.post(f"{A}/webhooks", json=body, headers=ADMIN), 201)
    return created


def _audit(api: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _ok(api.get(f"{A}/audit", params={"per_page": 200}, headers=ADMIN))["items"]
    return sorted((item for item in items if item["action"].startswith("webhook.")), key=lambda item: item["id"])


def test_create_shows_the_secret_once_and_lists_without_it(hooks_api: TestClient) -> None:
    app_id = _owner(hooks_api, "application", "Facturas")
    created = _hook(
        hooks_api,
        "application",
        app_id,
        events=["message.failed", "message.sent"],
        description="Billing team",
    )
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"), validate=True)) >= 24
    assert created["owner_ref"] == f"application:{app_id}" and created["owner_name"] == "Facturas"
    assert created["events"] == ["message.sent", "message.failed"]  # in the documented order
    assert created["enabled"] is True and created["description"] == "Billing team"
    assert set(created) == {
        "id",
        "owner_type",
        "owner_id",
        "owner_ref",
        "owner_name",
        "url",
        "events",
        "description",
        "enabled",
        "created_at",
        "updated_at",
        "secret",
    }

    shown = _ok(hooks_api.get(f"{A}/webhooks/{created['id']}", headers=ADMIN))
    listed = _ok(
        hooks_api.get(f"{A}/webhooks", params={"owner_type": "application", "owner_id": app_id}, headers=ADMIN)
    )
    assert "secret" not in shown and listed["items"] == [shown]
    assert {k: v for k, v in created.items() if k != "secret"} == shown

    audit = _audit(hooks_api)
    assert [(a["action"], a["actor"], a["target_id"]) for a in audit] == [
        ("webhook.create", "ana.admin", str(created["id"]))
    ]
    assert audit[0]["details"]["owner_ref"] == f"application:{app_id}"
    assert created["secret"] not in str(audit)


def test_the_audit_names_where_an_endpoint_points_but_not_its_query(hooks_api: TestClient) -> None:
    """Receivers often take a token in the query string; the audit trail is read by every admin."""
    app_id = _owner(hooks_api, "application", "Consulta")
    hook = _hook(hooks_api, "application", app_id, url="https://93.184.215.14/hook?token=s3cr3t-query")
    _ok(
        hooks_api.patch(
            f"{A}/webhooks/{hook['id']}", json={"url": "https://93.184.215.14/v2?token=other-s3cr3t"}, headers=ADMIN
        )
    )
    _ok(hooks_api.post(f"{A}/webhooks/{hook['id']}/secret", headers=ADMIN))
    _ok(hooks_api.delete(f"{A}/webhooks/{hook['id']}", headers=ADMIN), 204)
    trail = _audit(hooks_api)
    assert [a["action"] for a in trail] == ["webhook.create", "webhook.update", "webhook.secret", "webhook.delete"]
    assert trail[0]["details"]["url"] == "https://93.184.215.14/hook"
    assert trail[1]["details"]["url"] == {"from": "https://93.184.215.14/hook", "to": "https://93.184.215.14/v2"}
    assert "s3cr3t" not in str(trail)


def test_listing_by_owner_kind_and_all(hooks_api: TestClient) -> None:
    app_id = _owner(hooks_api, "application", "A")
    group_id = _owner(hooks_api, "group", "G")
    user_id = _owner(hooks_api, "user", "U")
    made = [
        _hook(hooks_api, "application", app_id),
        _hook(hooks_api, "group", group_id),
        _hook(hooks_api, "user", user_id),
    ]
    everything = _ok(hooks_api.get(f"{A}/webhooks", headers=ADMIN))["items"]
    assert [h["id"] for h in everything] == [h["id"] for h in made]
    assert [h["owner_name"] for h in everything] == ["A", "G", "U"]
    groups = _ok(hooks_api.get(f"{A}/webhooks", params={"owner_type": "group"}, headers=ADMIN))["items"]
    assert [h["owner_ref"] for h in groups] == [f"group:{group_id}"]
    other = _ok(hooks_api.get(f"{A}/webhooks", params={"owner_type": "user", "owner_id": user_id + 99}, headers=ADMIN))
    assert other["items"] == []
    _problem(hooks_api.get(f"{A}/webhooks", params={"owner_id": 1}, headers=ADMIN), 422, "invalid_request")
    _problem(hooks_api.get(f"{A}/webhooks", params={"owner_type": "robot"}, headers=ADMIN), 422, "invalid_request")


def test_patch_changes_what_is_given_and_is_audited(hooks_api: TestClient, clock: FixedClock) -> None:
    app_id = _owner(hooks_api, "application", "Avisos")
    hook = _hook(hooks_api, "application", app_id, description="first")
    clock.set(clock() + timedelta(minutes=5))
    changed = _ok(
        hooks_api.patch(
            f"{A}/webhooks/{hook['id']}",
            json={"url": "https://93.184.215.14/v2", "events": ["message.retrying", "message.sent"], "enabled": False},
            headers=ADMIN,
        )
    )
    assert changed["url"] == "https://93.184.215.14/v2" and changed["events"] == ["message.sent", "message.retrying"]
    assert changed["enabled"] is False and changed["description"] == "first"
    assert changed["updated_at"] > hook["updated_at"] and changed["created_at"] == hook["created_at"]
    cleared = _ok(hooks_api.patch(f"{A}/webhooks/{hook['id']}", json={"description": None}, headers=ADMIN))
    assert cleared["description"] is None
    unchanged = _ok(hooks_api.patch(f"{A}/webhooks/{hook['id']}", json={}, headers=ADMIN))
    assert unchanged == cleared
    _problem(
        hooks_api.patch(f"{A}/webhooks/{hook['id']}", json={"enabled": None}, headers=ADMIN), 422, "invalid_request"
    )
    _problem(hooks_api.patch(f"{A}/webhooks/{hook['id']}", json={"events": []}, headers=ADMIN), 422, "invalid_request")
    _problem(hooks_api.patch(f"{A}/webhooks/{hook['id']}", json={"secret": "x"}, headers=ADMIN), 422, "invalid_request")
    _problem(hooks_api.patch(f"{A}/webhooks/{hook['id'] + 99}", json={}, headers=ADMIN), 404, "not_found")
    actions = [(a["action"], a["details"]) for a in _audit(hooks_api)]
    assert actions[0][0] == "webhook.create" and [a for a, _ in actions[1:]] == ["webhook.update", "webhook.update"]
    assert actions[1][1]["enabled"] is False and actions[1][1]["url"]["to"] == "https://93.184.215.14/v2"
    assert actions[2][1] == {"description": {"from": "first", "to": None}}


def test_renewing_the_secret_replaces_it_at_once(hooks_api: TestClient) -> None:
    app_id = _owner(hooks_api, "application", "Rotar")
    hook = _hook(hooks_api, "application", app_id)
    renewed = _ok(hooks_api.post(f"{A}/webhooks/{hook['id']}/secret", headers=ADMIN))
    assert renewed["secret"].startswith("whsec_") and renewed["secret"] != hook["secret"]
    targets = _ok(
        hooks_api.get("/v1/webhooks/endpoints", params={"owner_ref": f"application:{app_id}"}, headers=READER)
    )
    assert [t["secret"] for t in targets["items"]] == [renewed["secret"]]
    assert [a["action"] for a in _audit(hooks_api)] == ["webhook.create", "webhook.secret"]
    assert hook["secret"] not in str(_audit(hooks_api)) and renewed["secret"] not in str(_audit(hooks_api))
    _problem(hooks_api.post(f"{A}/webhooks/{hook['id'] + 99}/secret", headers=ADMIN), 404, "not_found")


def test_delete_and_deleting_the_owner_deletes_its_endpoints(hooks_api: TestClient) -> None:
    app_id = _owner(hooks_api, "application", "Borrar")
    user_id = _owner(hooks_api, "user", "Borrada")
    first, second = _hook(hooks_api, "application", app_id), _hook(hooks_api, "user", user_id)
    assert _ok(hooks_api.delete(f"{A}/webhooks/{first['id']}", headers=ADMIN), 204) is None
    _problem(hooks_api.get(f"{A}/webhooks/{first['id']}", headers=ADMIN), 404, "not_found")
    _problem(hooks_api.delete(f"{A}/webhooks/{first['id']}", headers=ADMIN), 404, "not_found")
    assert _audit(hooks_api)[-1]["action"] == "webhook.delete"

    _ok(hooks_api.delete(f"{A}/users/{user_id}", headers=ADMIN), 204)
    _problem(hooks_api.get(f"{A}/webhooks/{second['id']}", headers=ADMIN), 404, "not_found")
    trail = _ok(hooks_api.get(f"{A}/audit", params={"action": "user.delete"}, headers=ADMIN))["items"]
    assert trail[0]["details"] == {"name": "Borrada", "tokens_deleted": 0, "webhooks_deleted": 1}
    assert _ok(hooks_api.get(f"{A}/webhooks", headers=ADMIN))["items"] == []


def test_bad_input_is_a_clear_4xx_and_creates_nothing(hooks_api: TestClient) -> None:
    app_id = _owner(hooks_api, "application", "Mal")
    base = {"owner_type": "application", "owner_id": app_id, "url": PUBLIC_URL, "events": ["message.sent"]}

    def post(**change: Any) -> Any:
        return hooks_api.post(f"{A}/webhooks", json={**base, **change}, headers=ADMIN)

    _problem(post(owner_id=app_id + 99), 404, "not_found")
    _problem(post(owner_type="group"), 404, "not_found")
    _problem(post(owner_type="robot"), 422, "invalid_request")
    _problem(post(events=["message.deleted"]), 422, "invalid_request")
    _problem(post(events=[]), 422, "invalid_request")
    _problem(post(events="message.sent"), 422, "invalid_request")
    _problem(post(owner_id="1"), 422, "invalid_request")
    _problem(post(description="a\nb"), 422, "invalid_request")
    _problem(post(url="https://93.184.215.14/\x00"), 422, "invalid_request")
    for url in ("ftp://93.184.215.14/", "not a url", "javascript:alert(1)", "https:///x", "http://u:p@93.184.215.14/"):
        body = _problem(post(url=url), 422, "invalid_request")
        assert body["errors"][0]["field"] == "url", body
    for url in ("http://127.0.0.1:9000/", "http://localhost/", "http://[::1]/", "http://169.254.169.254/latest/"):
        body = _problem(post(url=url), 422, "callback_url_refused")
        assert "address" in body["reason"] and body["reason"] in body["detail"]
    hook = _hook(hooks_api, "application", app_id)
    _problem(
        hooks_api.patch(f"{A}/webhooks/{hook['id']}", json={"url": "http://10.0.0.1/"}, headers=ADMIN),
        422,
        "callback_url_refused",
    )
    assert [h["id"] for h in _ok(hooks_api.get(f"{A}/webhooks", headers=ADMIN))["items"]] == [hook["id"]]
    assert _ok(hooks_api.get(f"{A}/webhooks/{hook['id']}", headers=ADMIN))["url"] == PUBLIC_URL


def test_private_urls_are_allowed_when_the_setting_says_so(database_url: str, db: Database, clock: FixedClock) -> None:
    settings = settings_for(database_url, webhooks_allow_private_urls=True)
    with TestClient(create_app(settings, clock=clock, db=db)) as api:
        app_id = _owner(api, "application", "Demo")
        created = _hook(api, "application", app_id, url="http://127.0.0.1:9000/hook")
        assert created["url"] == "http://127.0.0.1:9000/hook"
        _problem(
            api.post(
                f"{A}/webhooks",
                json={
                    "owner_type": "application",
                    "owner_id": app_id,
                    "url": "ftp://127.0.0.1/",
                    "events": ["message.sent"],
                },
                headers=ADMIN,
            ),
            422,
            "invalid_request",
        )


def test_only_the_admin_key_opens_the_admin_routes(hooks_api: TestClient) -> None:
    for headers in ({}, SERVICE, READER):
        _problem(hooks_api.get(f"{A}/webhooks", headers=headers), 401, "unauthorized")
        _problem(hooks_api.post(f"{A}/webhooks", json={}, headers=headers), 401, "unauthorized")


def test_the_read_api_gives_an_owners_enabled_endpoints_with_secrets(hooks_api: TestClient) -> None:
    app_id = _owner(hooks_api, "application", "Leer")
    other_id = _owner(hooks_api, "application", "Otra")
    group_id = _owner(hooks_api, "group", "Leer")
    on = _hook(hooks_api, "application", app_id, events=["message.sent", "message.failed"])
    off = _hook(hooks_api, "application", app_id)
    _ok(hooks_api.patch(f"{A}/webhooks/{off['id']}", json={"enabled": False}, headers=ADMIN))
    _hook(hooks_api, "application", other_id)
    _hook(hooks_api, "group", group_id)

    answer = _ok(hooks_api.get("/v1/webhooks/endpoints", params={"owner_ref": f"application:{app_id}"}, headers=READER))
    assert answer == {
        "items": [
            {
                "id": on["id"],
                "url": PUBLIC_URL,
                "events": ["message.sent", "message.failed"],
                "secret": on["secret"],
                "enabled": True,
            }
        ]
    }
    none = _ok(hooks_api.get("/v1/webhooks/endpoints", params={"owner_ref": "user:424242"}, headers=READER))
    assert none == {"items": []}

    for headers in ({}, {"Authorization": f"Bearer {ADMIN_KEY}"}, SERVICE, {"Authorization": "Bearer wrong"}):
        _problem(
            hooks_api.get("/v1/webhooks/endpoints", params={"owner_ref": f"application:{app_id}"}, headers=headers),
            401,
            "unauthorized",
        )
    for ref in (
        None,
        "",
        "application",
        "application:",
        "application:0",
        "robot:3",
        "application:x",
        "application:3:4",
    ):
        params = {} if ref is None else {"owner_ref": ref}
        _problem(hooks_api.get("/v1/webhooks/endpoints", params=params, headers=READER), 422, "invalid_request")


def test_without_a_webhooks_key_the_read_api_opens_to_no_one(api: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {ADMIN_KEY}"}):
        _problem(
            api.get("/v1/webhooks/endpoints", params={"owner_ref": "application:1"}, headers=headers),
            401,
            "unauthorized",
        )


def test_a_webhooks_key_must_be_long_and_its_own() -> None:
    ok = settings_for("sqlite://", validator_webhooks_key=WEBHOOKS_KEY)
    assert key_problems(ok) == [] and key_problems(settings_for("sqlite://")) == []
    assert key_problems(settings_for("sqlite://", validator_webhooks_key="short"))
    assert key_problems(settings_for("sqlite://", validator_webhooks_key=ADMIN_KEY))
