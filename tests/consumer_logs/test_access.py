"""Who may read the message log, and what it keeps of a message: `python -m consumer_logs` served
for real over its own SQLite file, fed through the real broker."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest

from consumer_logs.privacy import mask_email, mask_phone, masked_text
from tests.consumer_logs.support import READ_AUTH, READ_KEY, ServedLog, serve_consumer_logs
from tests.consumers import publish
from tests.support import ROOT, isolated_vhost, python_env, wait_until


@pytest.fixture(scope="module")
def without_content(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServedLog]]:
    """consumer_logs as compose runs it: CONSUMER_LOGS_STORE_CONTENT left at its default."""
    with isolated_vhost("cartero-logs-access") as amqp_url:
        with serve_consumer_logs(amqp_url, tmp_path_factory.mktemp("logs-plain")) as served:
            yield amqp_url, served


@pytest.fixture(scope="module")
def with_content(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServedLog]]:
    """consumer_logs as `make run` runs it: CONSUMER_LOGS_STORE_CONTENT=true."""
    with isolated_vhost("cartero-logs-content") as amqp_url:
        tmp = tmp_path_factory.mktemp("logs-content")
        with serve_consumer_logs(amqp_url, tmp, CONSUMER_LOGS_STORE_CONTENT="true") as served:
            yield amqp_url, served


def _events(served: ServedLog, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{served.url}/v1/events", params=params, headers=READ_AUTH, timeout=5)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def _rows(served: ServedLog, message_id: str) -> list[tuple[Any, Any]]:
    """(payload, raw) of the stored rows, read from the database file itself; payload decoded."""
    with sqlite3.connect(served.database_url.removeprefix("sqlite:///")) as db:
        rows = db.execute("SELECT payload, raw FROM events WHERE message_id = ? ORDER BY seq", (message_id,))
        return [(json.loads(payload) if payload is not None else None, raw) for payload, raw in rows]


def _publish_raw(amqp_url: str, body: bytes, *, message_id: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().basic_publish("", "logs", body, pika.BasicProperties(message_id=message_id))
    finally:
        connection.close()


def _log_a_message(amqp_url: str, served: ServedLog) -> dict[str, str]:
    """An SMS's and an email's events as the PHP senders write them (the body in `cuerpo`), and an
    unreadable body; returns the ids and the words that only the content holds."""
    # Letters only: a run of seven digits in a random hex string would read as a phone number
    # and be masked in the unreadable body, which is not what this test is about.
    marker = uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    sms_id, mail_id, raw_id = (str(uuid.uuid4()) for _ in range(3))
    text, subject, body = f"sms-text-{marker}", f"subject-{marker}", f"body-{marker}"
    publish(
        amqp_url,
        "logs",
        {
            "id": sms_id,
            "evento": "enviado",
            "cola": "cola_sms",
            "mensaje": text,
            "telefono": "+34600111789",
            "token_id": 7,
        },
    )
    publish(
        amqp_url,
        "logs",
        {
            "id": mail_id,
            "evento": "enviado",
            "cola": "correos",
            "asunto": subject,
            "cuerpo": body,
            "destinatario": "juana@example.com",
        },
    )
    # A consumer's failure events carry the whole message, and a provider's answer may quote the
    # number, the text or the recipient (a gateway's body, an SMTP refusal).
    publish(
        amqp_url,
        "logs",
        {
            "id": sms_id,
            "evento": "fallido",
            "cola": "cola_sms",
            "mensaje": text,
            "telefono": "+34600111789",
            "motivo": f"gateway answered 400: invalid destination 34600111789 for {text!r}",
        },
    )
    publish(
        amqp_url,
        "logs",
        {
            "id": mail_id,
            "evento": "rechazado",
            "cola": "correos",
            "asunto": subject,
            "cuerpo": body,
            "destinatario": "juana@example.com",
            "motivo": "recipient refused: {'juana@example.com': (550, b'no such user')}",
        },
    )
    _publish_raw(amqp_url, f"not json: {text} to juana@example.com".encode(), message_id=raw_id)
    wait_until(lambda: _events(served, id=raw_id), timeout=15, what="the unreadable event stored")
    return {"sms": sms_id, "mail": mail_id, "raw": raw_id, "text": text, "subject": subject, "body": body}


def test_every_read_needs_the_read_key(without_content: tuple[str, ServedLog]) -> None:
    _, served = without_content
    url = f"{served.url}/v1/events"
    for headers in (
        {},
        {"Authorization": "Bearer not-the-read-key"},
        {"Authorization": f"Basic {READ_KEY}"},
        {"Authorization": f"Bearer {READ_KEY}x"},
    ):
        refused = httpx.get(url, headers=headers, timeout=5)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["code"] == "unauthorized"
    by_id = httpx.get(url, params={"id": "x"}, timeout=5)
    assert by_id.status_code == 401
    assert httpx.get(url, headers=READ_AUTH, timeout=5).status_code == 200
    # Every path but the probes, the metrics and the API description is a read, and needs the key;
    # one message's status needs the status key instead, and only it (test_message_status).
    spec = httpx.get(f"{served.url}/openapi.json", timeout=5).json()
    for path, operations in spec["paths"].items():
        needed: list[dict[str, list[str]]] = (
            [{"StatusKey": []}] if path == "/v1/status/{message_id}" else [{"ReadKey": []}]
        )
        for operation in operations.values():
            assert operation.get("security") == needed, path
    assert "/v1/status/{message_id}" in spec["paths"]
    for open_path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{served.url}{open_path}", timeout=5).status_code == 200, open_path


def test_without_store_content_the_text_never_reaches_the_database(without_content: tuple[str, ServedLog]) -> None:
    amqp_url, served = without_content
    logged = _log_a_message(amqp_url, served)
    wait_until(lambda: _events(served, id=logged["mail"]), timeout=15, what="the email's event")
    sms = _events(served, id=logged["sms"])[0]
    assert "mensaje" not in sms
    assert sms["telefono"] == "+34600111789" and sms["token_id"] == 7, "who, and by which token, are kept"
    mail = _events(served, id=logged["mail"])[0]
    assert "asunto" not in mail and "cuerpo" not in mail and mail["destinatario"] == "juana@example.com"
    raw = _events(served, id=logged["raw"])[0]
    assert raw["readable"] is False and raw["raw"] is None
    (sms_payload, _), (sms_failure, _) = _rows(served, logged["sms"])
    (mail_payload, _), (mail_failure, _) = _rows(served, logged["mail"])
    assert set(sms_payload) == {"id", "evento", "cola", "telefono", "token_id"}
    assert set(mail_payload) == {"id", "evento", "cola", "destinatario"}
    # What the provider quoted of the text is gone from the reason too; the reason is kept.
    assert sms_failure["motivo"] == "gateway answered 400: invalid destination 34600111789 for '[content]'"
    assert set(mail_failure) == {"id", "evento", "cola", "destinatario", "motivo"}
    assert _rows(served, logged["raw"]) == [(None, None)]
    on_disk = b"".join(
        p.read_bytes() for p in Path(served.database_url.removeprefix("sqlite:///")).parent.glob("*.db*")
    )
    for word in ("text", "subject", "body"):
        assert logged[word].encode() not in on_disk, word


def test_with_store_content_the_text_is_kept(with_content: tuple[str, ServedLog]) -> None:
    amqp_url, served = with_content
    logged = _log_a_message(amqp_url, served)
    wait_until(lambda: _events(served, id=logged["mail"]), timeout=15, what="the email's event")
    assert _events(served, id=logged["sms"])[0]["mensaje"] == logged["text"]
    mail = _events(served, id=logged["mail"])[0]
    assert (mail["asunto"], mail["cuerpo"]) == (logged["subject"], logged["body"])
    assert _events(served, id=logged["raw"])[0]["raw"] == f"not json: {logged['text']} to juana@example.com"
    (sms_payload, _), _failure = _rows(served, logged["sms"])
    assert sms_payload["mensaje"] == logged["text"]


def test_lists_mask_addresses_and_a_lookup_by_id_does_not(with_content: tuple[str, ServedLog]) -> None:
    amqp_url, served = with_content
    logged = _log_a_message(amqp_url, served)
    wait_until(lambda: _events(served, id=logged["mail"]), timeout=15, what="the email's event")
    listed = {e["id"]: e for e in _events(served, evento="enviado", limit="1000")}
    assert listed[logged["sms"]]["telefono"] == "+34******789"
    assert listed[logged["mail"]]["destinatario"] == "j***@example.com"
    everything = json.dumps(_events(served, limit="1000"))
    for address in ("+34600111789", "34600111789", "juana@example.com"):
        assert address not in everything, address
    failures = {e["id"]: e for e in _events(served, limit="1000") if e["evento"] in ("fallido", "rechazado")}
    assert failures[logged["sms"]]["motivo"].startswith("gateway answered 400: invalid destination 34******789")
    assert failures[logged["mail"]]["motivo"] == "recipient refused: {'j***@example.com': (550, b'no such user')}"
    # An unreadable body names no field: a list masks what looks like an address, its lookup does not.
    listed_raw = {e["id"]: e for e in _events(served, limit="1000")}[logged["raw"]]["raw"]
    assert listed_raw == f"not json: {logged['text']} to j***@example.com"
    assert "juana@example.com" in _events(served, id=logged["raw"])[0]["raw"]
    assert _events(served, id=logged["sms"])[0]["telefono"] == "+34600111789"
    assert _events(served, id=logged["mail"])[0]["destinatario"] == "juana@example.com"
    # The stored row keeps the whole address: masking is how a list shows it.
    (sms_payload, _), _failure = _rows(served, logged["sms"])
    assert sms_payload["telefono"] == "+34600111789"


def test_masked_text() -> None:
    assert masked_text("to juana@example.com, +34600111789 or 600111789!") == (
        "to j***@example.com, +34******789 or 60****789!"
    )
    assert masked_text("order 123456 of 2026-07-01") == "order 123456 of 2026-07-01"


def test_masks() -> None:
    assert mask_phone("+34600111789") == "+34******789"
    assert mask_phone("600111789") == "60****789"
    assert mask_phone("1234567") == "*****67"
    assert mask_phone("1") == "1"
    assert mask_email("juana@example.com") == "j***@example.com"
    assert mask_email("a@b.example") == "a***@b.example"
    assert mask_email("not-an-address") == "***"


@pytest.mark.parametrize("key", ["", "too-short-key"])
def test_it_refuses_to_serve_without_a_long_enough_read_key(key: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumer_logs"],
        cwd=ROOT,
        env=python_env(CONSUMER_LOGS_READ_KEY=key, DATABASE_URL="sqlite:///:memory:"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CONSUMER_LOGS_READ_KEY must be set to a secret of at least 16 characters" in result.stderr
