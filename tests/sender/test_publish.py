"""The sender against the real RabbitMQ: 202 means a confirmed, persistent message and event."""

from __future__ import annotations

import json
import time
import uuid

import pika
from fastapi.testclient import TestClient

from sender.app import create_app
from tests.sender.conftest import sender_settings
from tests.support import drain, free_port, queue_depth
from tests.token_validator.support import RunningValidator


def _one(broker_url: str, queue: str) -> tuple[pika.BasicProperties, dict[str, object]]:
    messages = drain(broker_url, queue)
    assert len(messages) == 1, messages
    properties, body = messages[0]
    return properties, json.loads(body)


def test_sms_json_is_published_persistent_with_its_event(
    client: TestClient, broker_url: str, validator: RunningValidator
) -> None:
    response = client.post("/v1/sms", json={"mensaje": "Hola ñandú", "telefono": "+34 600 111 222"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "queued" and answer["queue"] == "cola_sms"
    assert uuid.UUID(answer["id"]).version == 4

    properties, message = _one(broker_url, "cola_sms")
    assert set(message) == {"id", "mensaje", "telefono", "fecha"}
    assert message["id"] == answer["id"] and message["mensaje"] == "Hola ñandú"
    assert message["telefono"] == "+34600111222"
    assert time.strptime(str(message["fecha"]), "%Y-%m-%d %H:%M:%S")
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.message_id == answer["id"]
    assert properties.timestamp is not None and abs(properties.timestamp - time.time()) < 60

    event_properties, event = _one(broker_url, "logs")
    assert event["evento"] == "enviado" and event["id"] == answer["id"] and event["cola"] == "cola_sms"
    assert event["cuerpo"] == "Petición enviada por un sender"
    assert event_properties.delivery_mode == 2
    # Who sent it, for the status endpoint and webhooks: the token's owner, not the token.
    assert event["owner_ref"] == f"application:{validator.tokens.owner('application', 'sender-tests')}"
    assert event["token_kind"] == "application" and str(event["token_prefix"]).startswith("app_")


def test_sms_as_a_php_style_form(client: TestClient, broker_url: str) -> None:
    response = client.post(
        "/v1/sms",
        content="mensaje=Hola+mundo%21&telefono=600111222&enviar=Enviar",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert response.status_code == 202, response.text
    _, message = _one(broker_url, "cola_sms")
    assert message["mensaje"] == "Hola mundo!" and "enviar" not in message


def test_email_json_and_form(client: TestClient, broker_url: str) -> None:
    first = client.post("/v1/email", json={"destinatario": "ana@example.com", "asunto": "Año", "cuerpo": "Cuerpo"})
    second = client.post("/v1/email", data={"destinatario": "luis@example.org", "asunto": "A", "cuerpo": "B"})
    assert first.status_code == 202 and second.status_code == 202
    messages = [json.loads(body) for _, body in drain(broker_url, "correos")]
    assert [m["destinatario"] for m in messages] == ["ana@example.com", "luis@example.org"]
    assert set(messages[0]) == {"id", "destinatario", "asunto", "cuerpo", "fecha"}
    assert first.json()["queue"] == "correos"


def test_broker_down_is_a_quick_503_and_never_a_202(validator: RunningValidator, token: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    app = create_app(sender_settings(dead, validator))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        started = time.monotonic()
        response = client.post("/v1/sms", json={"mensaje": "hola", "telefono": "600111222"})
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "broker_unavailable"
        assert elapsed < 2.5
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_readyz_and_metrics(client: TestClient) -> None:
    assert client.get("/readyz").json()["status"] == "ok"
    client.post("/v1/sms", json={"mensaje": "hola", "telefono": "600111222"})
    metrics = client.get("/metrics").text
    assert 'sender_requests_total{code="202",endpoint="/v1/sms"}' in metrics
    assert "sender_publish_seconds_count" in metrics


def test_queues_stay_declarable_the_php_way(client: TestClient, broker_url: str) -> None:
    """php-amqplib's queue_declare('cola_sms', false, true, false, false) must not get a 406."""
    client.post("/v1/sms", json={"mensaje": "hola", "telefono": "600111222"})
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        for queue in ("cola_sms", "correos", "logs"):
            channel.queue_declare(queue, passive=False, durable=True, exclusive=False, auto_delete=False)
    finally:
        connection.close()
    assert queue_depth(broker_url, "cola_sms") == 1
