"""Security: secrets never stored or echoed, credentials kept apart, bad input refused with a 4xx
and nothing spent."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cartero_common.credentials import credential_matches
from tests.token_validator.conftest import ADMIN, SERVICE, validate
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, TABLES, Tokens
from token_validator.db import Database

A = "/v1/admin"


def _everything_stored(db: Database) -> str:
    with db.engine.connect() as connection:
        return "\n".join(
            " ".join(str(value) for value in row)
            for table in TABLES
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )


def test_no_token_in_the_database_logs_or_answers(
    api: TestClient, db: Database, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = api.post(f"{A}/applications", json={"name": "secretive"}, headers=ADMIN).json()
    created = api.post(
        f"{A}/tokens",
        json={
            "kind": "application",
            "owner_id": app["id"],
            "actions": ["sms.send"],
            "restriction": {"type": "max_uses", "limit": 1},
        },
        headers=ADMIN,
    ).json()
    plaintext, _ = tokens.make("user", "someone")
    answers = [
        api.post("/v1/validate", json={"token": created["token"], "action": "sms.send"}, headers=SERVICE),
        api.post("/v1/validate", json={"token": created["token"], "action": "sms.send"}, headers=SERVICE),
        api.post("/v1/validate", json={"token": created["token"], "action": "email.send"}, headers=SERVICE),
        api.post("/v1/validate", json={"token": plaintext, "action": "sms.send", "cost": -1}, headers=SERVICE),
        api.post("/v1/validate", json={"token": plaintext, "action": "nope"}, headers=SERVICE),
        api.post("/v1/validate", json={"token": plaintext, "action": "sms.send", "extra": plaintext}, headers=SERVICE),
        api.post("/v1/validate", json={"token": created["token"], "action": "sms.send"}, headers=ADMIN),
        api.post(
            "/v1/validate",
            json={
                "token": plaintext,
                "action": "sms.send",
                "idempotency": {"key": "k", "fingerprint": "0" * 64, "response": {"status": 202, "body": {}}},
            },
            headers=SERVICE,
        ),
        api.get(f"{A}/tokens/{created['id']}", headers=ADMIN),
        api.get(f"{A}/tokens", headers=ADMIN),
        api.get(f"{A}/refusals", headers=ADMIN),
        api.get(f"{A}/audit", headers=ADMIN),
    ]
    assert [a.status_code for a in answers[:8]] == [200, 200, 200, 422, 422, 422, 401, 200]
    stored = _everything_stored(db)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (created["token"], plaintext):
        hidden = secret[8:]  # everything after the visible prefix
        assert hidden not in stored
        assert hidden not in logged
        for answer in answers:
            assert hidden not in answer.text
    assert created["prefix"] in stored  # the prefix is how a token is named


def test_credentials_are_kept_apart(api: TestClient) -> None:
    service_only = [
        ("post", "/v1/validate", {"token": "x", "action": "sms.send"}),
        ("post", f"/v1/usage/{'0' * 32}/refund", None),
    ]
    admin_only = [
        ("get", f"{A}/tokens", None),
        ("post", f"{A}/applications", {"name": "x"}),
        ("post", f"{A}/sessions", {"username": "a", "password": "b"}),
    ]
    wrong = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {SERVICE_KEY}"},
        {"Authorization": f"Bearer {SERVICE_KEY}x"},
        {"Authorization": f"Bearer {SERVICE_KEY[:-1]}"},
        {"Authorization": "Bearer " + "k" * 100_000},
    ]
    for method, path, body in service_only:
        for headers in [*wrong, ADMIN]:
            response = api.request(method, path, json=body, headers=headers)
            assert response.status_code == 401 and response.json()["code"] == "unauthorized", (path, headers)
    for method, path, body in admin_only:
        for headers in [*wrong, SERVICE, {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"}]:
            response = api.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert ADMIN_KEY not in response.text and SERVICE_KEY not in response.text


def test_credential_comparison_is_blind_to_content_and_length() -> None:
    assert credential_matches("same-secret", "same-secret")
    for given in ("", "same-secre", "same-secret-and-more", "x" * 10_000, "SAME-SECRET"):
        assert not credential_matches(given, "same-secret")
    assert not credential_matches(None, "same-secret")
    assert not credential_matches("", "")  # an unset key lets nobody in


@pytest.mark.parametrize(
    "body",
    [
        {"token": "T", "action": "sms.delete"},
        {"token": "T", "action": "*"},
        {"token": "T", "action": "sms.send; DROP TABLE tokens"},
        {"token": "T", "action": "sms.send", "cost": -1},
        {"token": "T", "action": "sms.send", "cost": 10**12},
        {"token": "T", "action": "sms.send", "cost": "1 OR 1=1"},
        {"token": "T" + "x" * 300, "action": "sms.send"},
        {"token": "", "action": "sms.send"},
        {"token": ["T"], "action": "sms.send"},
        {"action": "sms.send"},
        {"token": "T", "action": "sms.send", "request_id": "r" * 500},
    ],
)
def test_bad_validate_requests_are_422_and_spend_nothing(api: TestClient, tokens: Tokens, body: dict[str, Any]) -> None:
    token, token_id = tokens.make("application", "bad-input", restriction="max_uses", limit=3)
    filled = {k: (v.replace("T", token, 1) if isinstance(v, str) and k == "token" else v) for k, v in body.items()}
    response = api.post("/v1/validate", json=filled, headers=SERVICE)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert token[8:] not in response.text
    assert tokens.used(token_id) == 0
    assert api.get(f"{A}/refusals", headers=ADMIN).json()["total"] == 0


def test_sql_looking_tokens_are_just_unknown(api: TestClient, tokens: Tokens, db: Database) -> None:
    _, token_id = tokens.make("application", "target", restriction="max_uses", limit=3)
    for probe in (
        "app_' OR '1'='1",
        "app_x' OR 1=1; UPDATE tokens SET used = 0; --",
        "' UNION SELECT digest FROM tokens",
    ):
        assert validate(api, probe)["code"] == "invalid_token"
    assert tokens.used(token_id) == 0
    # None has a token's shape: all three are counted on the one row of this client and minute.
    refused = api.get(f"{A}/refusals", params={"code": "invalid_token"}, headers=ADMIN).json()["items"]
    assert [(r["count"], r["prefix"], r["token_id"]) for r in refused] == [(3, None, None)]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/tokens",
            {
                "kind": "application",
                "owner_id": 1,
                "actions": ["sms.send"],
                "restriction": {"type": "max_uses", "limit": -5},
            },
        ),
        (
            "/tokens",
            {
                "kind": "application",
                "owner_id": 1,
                "actions": ["sms.send"],
                "restriction": {"type": "monthly", "limit": 10**15},
            },
        ),
        (
            "/tokens",
            {
                "kind": "application",
                "owner_id": 1,
                "actions": ["sms.send"],
                "restriction": {"type": "monthly", "limit": 0},
            },
        ),
        (
            "/tokens",
            {"kind": "application", "owner_id": 1, "actions": ["sms.send"], "restriction": {"type": "monthly"}},
        ),
        (
            "/tokens",
            {
                "kind": "application",
                "owner_id": 1,
                "actions": ["sms.send"],
                "restriction": {"type": "unlimited", "limit": 3},
            },
        ),
        ("/tokens", {"kind": "application", "owner_id": 1, "actions": ["sms.send"], "restriction": {"type": "daily"}}),
        ("/tokens", {"kind": "application", "owner_id": 1, "actions": ["sms.sendd"]}),
        ("/tokens", {"kind": "application", "owner_id": 1, "actions": ["*", "sms.send"]}),
        ("/tokens", {"kind": "application", "owner_id": 1, "actions": []}),
        ("/tokens", {"kind": "robot", "owner_id": 1, "actions": ["sms.send"]}),
        ("/tokens", {"kind": "application", "owner_id": -1, "actions": ["sms.send"]}),
        ("/tokens", {"kind": "application", "owner_id": 999, "actions": ["sms.send"]}),
        ("/tokens", {"kind": "application", "owner_id": 1, "actions": ["sms.send"], "expires_at": "2001-01-01"}),
        ("/tokens", {"kind": "application", "owner_id": 1, "actions": ["sms.send"], "expires_at": "mañana"}),
        ("/applications", {"name": ""}),
        ("/applications", {"name": "x" * 101}),
        ("/applications", {"name": "tab\tinside"}),
        ("/groups", {"name": "g", "quota": {"type": "monthly", "limit": -1}}),
        ("/tokens/1/remaining", {"grant": -3}),
        ("/tokens/1/remaining", {"set": 10**12}),
        ("/tokens/1/remaining", {}),
    ],
)
def test_bad_admin_input_is_a_clear_4xx(api: TestClient, path: str, body: dict[str, Any]) -> None:
    api.post(f"{A}/applications", json={"name": "owner-one"}, headers=ADMIN)
    api.post(
        f"{A}/tokens",
        json={
            "kind": "application",
            "owner_id": 1,
            "actions": ["sms.send"],
            "restriction": {"type": "max_uses", "limit": 1},
        },
        headers=ADMIN,
    )
    response = api.post(f"{A}{path}", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_request"


def test_sql_looking_names_are_stored_as_written(api: TestClient) -> None:
    name = "Robert'); DROP TABLE tokens;--"
    created = api.post(f"{A}/users", json={"name": name}, headers=ADMIN)
    assert created.status_code == 201 and created.json()["name"] == name
    assert api.get(f"{A}/users", params={"q": "drop table"}, headers=ADMIN).json()["items"][0]["name"] == name
    assert api.get(f"{A}/tokens", headers=ADMIN).status_code == 200
    for params in ({"page": 0}, {"per_page": 0}, {"per_page": 10_000}, {"page": "1; --"}):
        assert api.get(f"{A}/users", params=params, headers=ADMIN).status_code == 422
    assert api.get(f"{A}/users/{2**70}", headers=ADMIN).status_code == 422
    assert api.get(f"{A}/refusals", params={"since": "ayer"}, headers=ADMIN).status_code == 422


@pytest.mark.parametrize("raw", [b"", b"{bad", b"[]", b'"token"', b"\xff\xfe", b'{"token": "x", "action": "sms.send"'])
def test_a_body_that_is_not_a_json_object_is_422_and_the_key_is_checked_first(api: TestClient, raw: bytes) -> None:
    answer = api.post("/v1/validate", content=raw, headers={**SERVICE, "Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "invalid_request" and answer.json()["errors"]
    anonymous = api.post("/v1/validate", content=raw, headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
