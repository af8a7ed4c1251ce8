"""`POST /v1/sms/batch` and `/v1/email/batch` against the real validator and broker: every message
validated and charged once, a use never spent without its message queued nor the reverse, and
each message's id or problem in the answer."""

from __future__ import annotations

import json
import time
import uuid

import pika
import pytest
from fastapi.testclient import TestClient

from sender.app import create_app
from tests.sender.conftest import sender_settings
from tests.support import ROOT, free_port
from tests.token_validator.support import RunningValidator

pytestmark = pytest.mark.integration

FIGURES = ROOT / "test-artifacts" / "batch.json"


def sms(n: int) -> dict[str, str]:
    return {"mensaje": f"hola {n}", "telefono": "+34600111222"}


def queued_ids(broker_url: str, queue: str) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        found: list[str] = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append(json.loads(body)["id"])
    finally:
        connection.close()


def test_a_thousand_sms_in_one_request_are_each_queued_once_with_their_event(
    client: TestClient, broker_url: str
) -> None:
    started = time.monotonic()
    answer = client.post("/v1/sms/batch", json={"messages": [sms(n) for n in range(1000)]})
    elapsed = time.monotonic() - started
    body = answer.json()
    assert answer.status_code == 202, {r["problem"]["code"] for r in body.get("results", []) if "problem" in r}
    assert body["queued"] == 1000 and body["not_queued"] == 0
    assert [item["index"] for item in body["results"]] == list(range(1000))
    ids = [item["id"] for item in body["results"]]
    assert len(set(ids)) == 1000 and all(item["queue"] == "cola_sms" for item in body["results"])
    assert sorted(queued_ids(broker_url, "cola_sms")) == sorted(ids)
    assert sorted(queued_ids(broker_url, "logs")) == sorted(ids)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps({"messages": 1000, "seconds": round(elapsed, 3)}))


def test_one_bad_message_refuses_the_batch_and_charges_nothing(validator: RunningValidator, broker_url: str) -> None:
    token, token_id = validator.tokens.make(
        "application", f"batch-{uuid.uuid4().hex[:6]}", restriction="max_uses", limit=5
    )
    app = create_app(sender_settings(broker_url, validator))
    messages = [sms(0), {"mensaje": "hola", "telefono": "not a phone"}, sms(2), "not an object"]
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.post("/v1/sms/batch", json={"messages": messages})
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    assert {error["field"] for error in answer.json()["errors"]} == {"messages.1.telefono", "messages.3"}
    assert validator.tokens.used(token_id) == 0
    assert queued_ids(broker_url, "cola_sms") == []


def test_a_token_with_uses_for_some_queues_exactly_those(validator: RunningValidator, broker_url: str) -> None:
    token, token_id = validator.tokens.make(
        "application", f"batch-{uuid.uuid4().hex[:6]}", restriction="max_uses", limit=2
    )
    app = create_app(sender_settings(broker_url, validator))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.post("/v1/sms/batch", json={"messages": [sms(n) for n in range(5)]})
    assert answer.status_code == 207, answer.text
    body = answer.json()
    sent = [r for r in body["results"] if r.get("status") == "queued"]
    refused = [r for r in body["results"] if r.get("problem")]
    assert body["queued"] == len(sent) == 2 and body["not_queued"] == len(refused) == 3
    assert {r["problem"]["code"] for r in refused} == {"usage_exhausted"} and refused[0]["problem"]["status"] == 403
    assert validator.tokens.used(token_id) == 2, "each queued message one use, a refused one none"
    assert sorted(queued_ids(broker_url, "cola_sms")) == sorted(r["id"] for r in sent)


def test_with_the_broker_down_nothing_is_queued_and_every_use_is_refunded(validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make(
        "application", f"batch-{uuid.uuid4().hex[:6]}", restriction="max_uses", limit=50
    )
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    app = create_app(sender_settings(dead, validator))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.post(
            "/v1/email/batch",
            json={
                "messages": [
                    {"destinatario": "ana@example.com", "asunto": "Hola", "cuerpo": f"Cuerpo {n}"} for n in range(5)
                ]
            },
        )
    assert answer.status_code == 207, answer.text
    assert answer.json()["queued"] == 0
    assert {r["problem"]["code"] for r in answer.json()["results"]} == {"broker_unavailable"}
    assert validator.tokens.used(token_id) == 0


def test_what_concerns_the_whole_request_is_one_problem(client: TestClient, validator: RunningValidator) -> None:
    for messages in ([sms(0)], [{"mensaje": "no phone"}]):  # a bad token is told first, bad fields or not
        bad_token = client.post(
            "/v1/sms/batch", json={"messages": messages}, headers={"Authorization": "Bearer app_nope"}
        )
        assert bad_token.status_code == 401 and bad_token.headers["content-type"].startswith("application/problem+json")
        assert bad_token.json()["code"] == "invalid_token" and "Bearer" in bad_token.headers["www-authenticate"]
    assert client.post("/v1/sms/batch", json={"messages": []}).json()["code"] == "invalid_request"
    too_many = client.post("/v1/sms/batch", json={"messages": [sms(n) for n in range(1001)]})
    assert too_many.status_code == 422
    keyed = client.post("/v1/sms/batch", json={"messages": [sms(0)]}, headers={"Idempotency-Key": "k1"})
    assert keyed.status_code == 422 and keyed.json()["code"] == "idempotency_not_supported"
    form = client.post("/v1/sms/batch", data={"mensaje": "hola", "telefono": "600111222"})
    assert form.status_code == 415
    # Two messages may take 2 × BATCH_BYTES_PER_MESSAGE (16 KiB each by default), not more.
    padded = {"messages": [sms(0), sms(1)], "padding": "x" * (2 * 16 * 1024)}
    too_large = client.post("/v1/sms/batch", json=padded)
    assert too_large.status_code == 413 and too_large.json()["code"] == "payload_too_large"
