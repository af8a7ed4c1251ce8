"""Odd input is a 4xx problem, never a 500: NUL in any string stored or filtered by (PostgreSQL
text cannot hold one), and values of other JSON types than documented (no coercion)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.token_validator.conftest import ADMIN, SERVICE
from tests.token_validator.support import Tokens

A = "/v1/admin"
NUL = "a\x00b"


def _invalid(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_request"


def _created(api: TestClient, path: str, body: dict[str, Any]) -> int:
    response = api.post(f"{A}/{path}", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


QUERIES = [
    ("applications", "q"),
    ("groups", "q"),
    ("users", "q"),
    ("tokens", "q"),
    ("refusals", "prefix"),
    ("refusals", "code"),
    ("audit", "actor"),
    ("audit", "action"),
    ("audit", "target_type"),
    ("audit", "target_id"),
    ("usage", "month"),
]


@pytest.mark.parametrize(("path", "name"), QUERIES)
def test_nul_in_a_query_parameter_is_422(api: TestClient, path: str, name: str) -> None:
    _invalid(api.get(f"{A}/{path}", params={name: NUL}, headers=ADMIN))


def test_nul_in_a_query_parameter_name_is_422(api: TestClient) -> None:
    _invalid(api.get(f"{A}/audit", params={NUL: "x"}, headers=ADMIN))


def test_nul_in_admin_bodies_is_422(api: TestClient, tokens: Tokens) -> None:
    app_id = _created(api, "applications", {"name": "nul-app"})
    group_id = _created(api, "groups", {"name": "nul-group"})
    bodies = [
        ("post", "applications", {"name": NUL}),
        ("post", "groups", {"name": NUL, "quota": {"type": "unlimited"}}),
        ("patch", f"applications/{app_id}", {"name": NUL}),
        ("patch", f"groups/{group_id}", {"name": NUL}),
        ("post", "tokens", {"kind": "application", "owner_id": app_id, "actions": ["sms.send"], "name": NUL}),
        ("post", "tokens", {"kind": "application", "owner_id": app_id, "actions": [f"sms.send{NUL}"]}),
        ("post", "tokens", {"kind": "application", "owner_id": app_id, "actions": ["*"], "expires_at": NUL}),
        ("post", "sessions", {"username": NUL, "password": "correct horse battery"}),
        ("post", "sessions", {"username": "ana", "password": NUL}),
        ("post", "admins", {"username": NUL, "password": "correct horse battery"}),
        ("post", "admins", {"username": "nul-admin", "password": f"correct horse {NUL}"}),
        ("put", "admins/ana/password", {"password": f"correct horse {NUL}"}),
    ]
    for method, path, body in bodies:
        _invalid(api.request(method, f"{A}/{path}", json=body, headers=ADMIN))
    assert api.get(f"{A}/applications", params={"q": "a"}, headers=ADMIN).json()["total"] == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"request_id": NUL},
        {"client_ip": NUL},
        {"idempotency": {"key": "k", "fingerprint": "0" * 64, "response": {"status": 202, "body": {"id": NUL}}}},
        {"idempotency": {"key": "k", "fingerprint": "0" * 64, "response": {NUL: 1}}},
    ],
)
def test_nul_in_a_validation_is_422_and_spends_nothing(api: TestClient, tokens: Tokens, extra: dict[str, Any]) -> None:
    token, token_id = tokens.make("application", "nul-validate", restriction="max_uses", limit=3)
    for presented in (token, "not-a-token"):
        body = {"token": presented, "action": "sms.send", **extra}
        _invalid(api.post("/v1/validate", json=body, headers=SERVICE))
        _invalid(api.post("/v1/validate/batch", json={"checks": [body]}, headers=SERVICE))
    _invalid(api.post("/v1/validate", json={"token": f"{token}{NUL}", "action": "sms.send"}, headers=SERVICE))
    assert tokens.used(token_id) == 0
    assert api.get(f"{A}/refusals", headers=ADMIN).json()["total"] == 0


def test_admin_bodies_take_the_documented_json_types_only(api: TestClient, tokens: Tokens) -> None:
    app_id = _created(api, "applications", {"name": "strict-app"})
    group_id = _created(api, "groups", {"name": "strict-group", "quota": {"type": "monthly", "limit": 5}})
    token_body = {"kind": "application", "owner_id": app_id, "actions": ["sms.send"]}
    token_id = _created(api, "tokens", {**token_body, "restriction": {"type": "max_uses", "limit": 5}})
    bodies = [
        ("post", "applications", {"name": "x", "disabled": 0}),
        ("post", "users", {"name": "x", "disabled": "true"}),
        ("post", "groups", {"name": "x", "disabled": 1}),
        ("patch", f"applications/{app_id}", {"disabled": 0}),
        ("patch", f"applications/{app_id}", {"disabled": "false"}),
        ("patch", f"applications/{app_id}", {"name": 7}),
        ("post", "groups", {"name": "x", "quota": {"type": "monthly", "limit": "3"}}),
        ("put", f"groups/{group_id}/quota", {"type": "max_uses", "limit": True}),
        ("put", f"groups/{group_id}/quota", {"type": "max_uses", "limit": 5.0}),
        ("post", f"groups/{group_id}/quota/remaining", {"grant": "2"}),
        ("post", f"groups/{group_id}/quota/remaining", {"set": True}),
        ("post", "tokens", {**token_body, "owner_id": str(app_id)}),
        ("post", "tokens", {**token_body, "owner_id": True}),
        ("post", "tokens", {**token_body, "actions": "sms.send"}),
        ("post", "tokens", {**token_body, "expires_at": 4_102_444_800}),
        ("post", "tokens", {**token_body, "expires_at": "4102444800"}),
        ("post", "tokens", {**token_body, "restriction": {"type": "max_uses", "limit": "1"}}),
        ("put", f"tokens/{token_id}/restriction", {"type": "max_uses", "limit": "9"}),
        ("post", f"tokens/{token_id}/remaining", {"grant": True}),
        ("post", f"tokens/{token_id}/remaining", {"set": "1"}),
        ("post", "sessions", {"username": 1, "password": "correct horse battery"}),
        ("post", "admins", {"username": "strict", "password": 12345678901234}),
    ]
    for method, path, body in bodies:
        response = api.request(method, f"{A}/{path}", json=body, headers=ADMIN)
        assert response.status_code == 422, (method, path, body, response.text)
        assert response.json()["code"] == "invalid_request"
    # The documented types still work, an ISO-8601 expiry included.
    _created(api, "tokens", {**token_body, "expires_at": "2099-01-01T00:00:00"})
    updated = api.patch(f"{A}/applications/{app_id}", json={"disabled": True}, headers=ADMIN)
    assert updated.status_code == 200 and updated.json()["disabled"] is True
    restriction = api.get(f"{A}/tokens/{token_id}", headers=ADMIN).json()["restriction"]
    assert restriction["limit"] == 5 and restriction["remaining"] == 5


@pytest.mark.parametrize("cost", ["1", True, 1.0, "0"])
def test_validate_takes_an_integer_cost_only(api: TestClient, tokens: Tokens, cost: Any) -> None:
    token, token_id = tokens.make("application", "strict-cost", restriction="max_uses", limit=3)
    body = {"token": token, "action": "sms.send", "cost": cost}
    _invalid(api.post("/v1/validate", json=body, headers=SERVICE))
    _invalid(api.post("/v1/validate/batch", json={"checks": [body]}, headers=SERVICE))
    assert tokens.used(token_id) == 0
