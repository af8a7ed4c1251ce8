"""Bodies at the edges of what a parser or a mail header can hold: a 422 problem, before any
use of the token is spent, whatever token came with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartero_common.wire import LINE_BREAKS
from sender.app import create_app
from tests.sender.conftest import sender_settings
from tests.support import queue_depth
from tests.token_validator.support import RunningValidator

SMS = '"mensaje": "hola", "telefono": "600111222"'
JUNK_TOKEN = "app_" + "J" * 43  # well formed, unknown to the validator

ODD_JSON = {
    "nested 30,000 deep": b"[" * 30_000 + b"]" * 30_000,
    "an object 2,000 deep": b'{"a":' * 2_000 + b"1" + b"}" * 2_000,
    "a deep extra field": b"{" + SMS.encode() + b', "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "one level past the limit": b"{" + SMS.encode() + b', "x": ' + b"[" * 64 + b"]" * 64 + b"}",
    "a 5,000-digit integer": b"{" + SMS.encode() + b', "n": ' + b"7" * 5_000 + b"}",
    "a negative 4,301-digit one": b"{" + SMS.encode() + b', "n": -' + b"1" * 4_301 + b"}",
    "a lone surrogate": b'{"mensaje": "hola \\ud800", "telefono": "600111222"}',
    "a lone surrogate key": b'{"\\udfff": 1, ' + SMS.encode() + b"}",
}


@pytest.fixture
def anonymous(broker_url: str, validator: RunningValidator) -> Iterator[TestClient]:
    with TestClient(create_app(sender_settings(broker_url, validator))) as test_client:
        yield test_client


def _invalid_request(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == "invalid_request" and body["status"] == 422
    return body


def _nothing_published(broker_url: str) -> None:
    assert [queue_depth(broker_url, q) for q in ("cola_sms", "correos", "logs")] == [0, 0, 0]


@pytest.mark.parametrize("body", ODD_JSON.values(), ids=ODD_JSON.keys())
def test_json_past_the_parsers_limits_is_a_422_and_spends_nothing(
    anonymous: TestClient, broker_url: str, validator: RunningValidator, body: bytes
) -> None:
    token, token_id = validator.tokens.make("application", "odd-json", restriction="max_uses", limit=3)
    headers = {"Content-Type": "application/json"}
    for bearer in (token, JUNK_TOKEN):
        response = anonymous.post("/v1/sms", content=body, headers={**headers, "Authorization": f"Bearer {bearer}"})
        problem = _invalid_request(response)
        assert problem["detail"].startswith("The body is not valid JSON")
        assert "7777" not in response.text
    assert validator.tokens.used(token_id) == 0
    _nothing_published(broker_url)


def test_without_a_token_an_odd_body_is_still_401(anonymous: TestClient, broker_url: str) -> None:
    response = anonymous.post(
        "/v1/sms", content=ODD_JSON["nested 30,000 deep"], headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401 and response.json()["code"] == "missing_token"
    _nothing_published(broker_url)


def test_nesting_within_the_limit_is_accepted(
    anonymous: TestClient, broker_url: str, validator: RunningValidator
) -> None:
    token, _ = validator.tokens.make("application", "odd-json-ok")
    body = b"{" + SMS.encode() + b', "x": ' + b"[" * 63 + b"]" * 63 + b', "n": ' + b"7" * 4_300 + b"}"
    response = anonymous.post(
        "/v1/sms", content=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 202, response.text
    assert queue_depth(broker_url, "cola_sms") == 1


@pytest.mark.parametrize("separator", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
@pytest.mark.parametrize("as_form", [False, True], ids=["json", "form"])
def test_a_subject_that_would_split_is_a_422_and_spends_nothing(
    anonymous: TestClient, broker_url: str, validator: RunningValidator, separator: str, as_form: bool
) -> None:
    token, token_id = validator.tokens.make("application", "subjects", restriction="max_uses", limit=3)
    email = {"destinatario": "ana@example.com", "asunto": f"Cita{separator}Bcc: x@evil.example", "cuerpo": "B"}
    headers = {"Authorization": f"Bearer {token}"}
    response = (
        anonymous.post("/v1/email", data=email, headers=headers)
        if as_form
        else anonymous.post("/v1/email", json=email, headers=headers)
    )
    problem = _invalid_request(response)
    assert [error["field"] for error in problem["errors"]] == ["asunto"]
    assert validator.tokens.used(token_id) == 0
    _nothing_published(broker_url)


def test_a_subject_with_separators_only_at_its_ends_is_trimmed_and_accepted(
    anonymous: TestClient, broker_url: str, validator: RunningValidator
) -> None:
    token, token_id = validator.tokens.make("application", "subjects-ok", restriction="max_uses", limit=3)
    email = {"destinatario": "ana@example.com", "asunto": "\u2028 Cita \u2029\r\n", "cuerpo": "línea 1\u2028línea 2"}
    response = anonymous.post("/v1/email", json=email, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.text
    assert validator.tokens.used(token_id) == 1


def test_the_subject_rule_is_in_the_openapi(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    content = document["paths"]["/v1/email"]["post"]["requestBody"]["content"]
    for media in ("application/json", "application/x-www-form-urlencoded"):
        subject = content[media]["schema"]["properties"]["asunto"]
        assert subject["pattern"] and subject["maxLength"] == 998
