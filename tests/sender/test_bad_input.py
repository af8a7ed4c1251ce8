"""Every kind of bad input: a 4xx problem+json, nothing published."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import queue_depth

GOOD_SMS = {"mensaje": "hola", "telefono": "600111222"}


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code and body["title"] and body["detail"]
    return body


def _assert_nothing_published(broker_url: str) -> None:
    assert queue_depth(broker_url, "cola_sms") == 0
    assert queue_depth(broker_url, "correos") == 0
    assert queue_depth(broker_url, "logs") == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"mensaje": "hola", "telefono": ', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"", "application/json"),
        (b'{"mensaje": "\xff\xfe", "telefono": "600111222"}', "application/json"),
        (b"mensaje=%FF%FE&telefono=600111222", "application/x-www-form-urlencoded"),
    ],
)
def test_unreadable_bodies(client: TestClient, broker_url: str, content: bytes, content_type: str) -> None:
    response = client.post("/v1/sms", content=content, headers={"Content-Type": content_type})
    _assert_problem(response, 422, "invalid_request")
    _assert_nothing_published(broker_url)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", None])
def test_wrong_content_type(client: TestClient, broker_url: str, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v1/sms", content=b'{"mensaje":"hola","telefono":"600111222"}', headers=headers)
    _assert_problem(response, 415, "unsupported_media_type")
    _assert_nothing_published(broker_url)


def test_ten_megabyte_body(client: TestClient, broker_url: str) -> None:
    response = client.post(
        "/v1/sms",
        content=b'{"mensaje": "' + b"x" * (10 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    _assert_problem(response, 413, "payload_too_large")
    _assert_nothing_published(broker_url)


def test_body_over_the_limit_without_content_length(client: TestClient, broker_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    response = client.post("/v1/sms", content=chunks(), headers={"Content-Type": "application/json"})
    _assert_problem(response, 413, "payload_too_large")
    _assert_nothing_published(broker_url)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/sms", {"telefono": "600111222"}, "mensaje"),
        ("/v1/sms", {"mensaje": "hola"}, "telefono"),
        ("/v1/sms", {"mensaje": "", "telefono": "600111222"}, "mensaje"),
        ("/v1/sms", {"mensaje": "hola", "telefono": "llamame-ya"}, "telefono"),
        ("/v1/sms", {"mensaje": "hola", "telefono": 600111222}, "telefono"),
        ("/v1/sms", {"mensaje": {"a": 1}, "telefono": "600111222"}, "mensaje"),
        ("/v1/email", {"destinatario": "ana.example.com", "asunto": "a", "cuerpo": "b"}, "destinatario"),
        ("/v1/email", {"destinatario": "ana@example.com", "asunto": "", "cuerpo": "b"}, "asunto"),
        ("/v1/email", {"destinatario": "ana@example.com", "asunto": "a"}, "cuerpo"),
    ],
)
def test_field_errors_are_listed(
    client: TestClient, broker_url: str, path: str, body: dict[str, Any], field: str
) -> None:
    problem = _assert_problem(client.post(path, json=body), 422, "invalid_request")
    assert field in [error["field"] for error in problem["errors"]]
    _assert_nothing_published(broker_url)


def test_field_errors_do_not_echo_the_input(client: TestClient) -> None:
    response = client.post("/v1/sms", json={"mensaje": "hola", "telefono": "secret-value-xyz"})
    assert "secret-value-xyz" not in response.text


def test_unknown_fields_are_ignored(client: TestClient, broker_url: str) -> None:
    response = client.post("/v1/sms", json={**GOOD_SMS, "prioridad": "alta"})
    assert response.status_code == 202
    assert queue_depth(broker_url, "cola_sms") == 1


def test_unknown_path_and_method_are_problems_too(client: TestClient) -> None:
    _assert_problem(client.get("/v1/nothing"), 404, "not_found")
    _assert_problem(client.get("/v1/sms"), 405, "method_not_allowed")
