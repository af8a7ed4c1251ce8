"""Idempotency-Key: the same key with the same token within 24 h gets the first answer, with
nothing published and no use counted again, even when the repeats race each other."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient

from sender.app import create_app
from tests.sender.conftest import sender_settings
from tests.support import drain, free_port, queue_depth, served
from tests.token_validator.support import RunningValidator

SMS = {"mensaje": "hola", "telefono": "600111222"}


def _bearer(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def test_a_repeat_gets_the_first_answer_and_publishes_nothing(broker_url: str, validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "idem", restriction="max_uses", limit=10)
    with TestClient(create_app(sender_settings(broker_url, validator)), headers=_bearer(token, "order-42")) as client:
        first = client.post("/v1/sms", json=SMS)
        again = client.post("/v1/sms", json=SMS)
        form = client.post("/v1/sms", data=SMS)  # the same request as a form is the same request
    assert first.status_code == again.status_code == form.status_code == 202
    assert again.json() == first.json() == form.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert queue_depth(broker_url, "cola_sms") == 1 and queue_depth(broker_url, "logs") == 1
    assert validator.tokens.used(token_id) == 1


def test_the_key_belongs_to_the_token_and_to_the_request(broker_url: str, validator: RunningValidator) -> None:
    first_token, _ = validator.tokens.make("application", "idem-a")
    other_token, _ = validator.tokens.make("application", "idem-b")
    with TestClient(create_app(sender_settings(broker_url, validator))) as client:
        one = client.post("/v1/sms", json=SMS, headers=_bearer(first_token, "k1"))
        other = client.post("/v1/sms", json=SMS, headers=_bearer(other_token, "k1"))
        changed = client.post("/v1/sms", json={**SMS, "mensaje": "otro"}, headers=_bearer(first_token, "k1"))
        email = client.post(
            "/v1/email",
            json={"destinatario": "a@example.com", "asunto": "a", "cuerpo": "b"},
            headers=_bearer(first_token, "k1"),
        )
    assert one.status_code == other.status_code == 202 and one.json()["id"] != other.json()["id"]
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_mismatch"
    assert email.status_code == 422 and email.json()["code"] == "idempotency_key_mismatch"
    assert queue_depth(broker_url, "cola_sms") == 2 and queue_depth(broker_url, "correos") == 0


def test_concurrent_repeats_publish_once(broker_url: str, validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "idem-race", restriction="max_uses", limit=100)
    with served(create_app(sender_settings(broker_url, validator))) as url:

        def post(_: int) -> httpx.Response:
            return httpx.post(f"{url}/v1/sms", json=SMS, headers=_bearer(token, "same-key"), timeout=10)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, range(24)))
        after = httpx.post(f"{url}/v1/sms", json=SMS, headers=_bearer(token, "same-key"), timeout=10)
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {202, 409}, statuses
    accepted = {a.json()["id"] for a in answers if a.status_code == 202}
    assert len(accepted) == 1
    assert after.status_code == 202 and after.json()["id"] in accepted
    messages = drain(broker_url, "cola_sms")
    assert [json.loads(body)["id"] for _, body in messages] == list(accepted)
    assert validator.tokens.used(token_id) == 1


def test_a_failed_publish_releases_the_key(broker_url: str, validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "idem-retry", restriction="max_uses", limit=5)
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with TestClient(create_app(sender_settings(dead, validator)), headers=_bearer(token, "retry-me")) as down:
        assert down.post("/v1/sms", json=SMS).json()["code"] == "broker_unavailable"
    assert validator.tokens.used(token_id) == 0
    with TestClient(create_app(sender_settings(broker_url, validator)), headers=_bearer(token, "retry-me")) as up:
        retried = up.post("/v1/sms", json=SMS)
    assert retried.status_code == 202 and "idempotent-replayed" not in retried.headers
    assert queue_depth(broker_url, "cola_sms") == 1
    assert validator.tokens.used(token_id) == 1
