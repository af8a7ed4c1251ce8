"""Through the real parts: endpoints registered on the validator's admin API, the validator
served, `python -m consumer_logs` and `python -m consumer_webhooks` as processes, a receiver
started here. The events come on `logs` as the sender and the consumers write them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.consumer_logs.support import serve_consumer_logs
from tests.consumer_webhooks.support import Receiver, signature_by_hand
from tests.consumers import publish, sms, start_consumer, wait_consuming
from tests.support import isolated_vhost, stop_process, wait_until
from tests.token_validator.support import ADMIN_KEY, serve_validator

WEBHOOKS_KEY = "webhooks-key-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def register(validator_url: str, owner_type: str, owner_id: int, url: str, events: list[str]) -> dict[str, Any]:
    answer = httpx.post(
        f"{validator_url}/v1/admin/webhooks",
        json={"owner_type": owner_type, "owner_id": owner_id, "url": url, "events": events},
        headers=ADMIN,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def consumer_events(url: str, message_id: str, owner_ref: str) -> None:
    """What the sender and consumer_sms write on `logs` for a message retried once, then sent."""
    message = sms(message_id)
    publish(url, "logs", {**message, "evento": "enviado", "cola": "cola_sms", "owner_ref": owner_ref})
    base = {**message, "cola": "cola_sms", "fecha_consumo": "2026-07-01 10:00:00"}
    publish(url, "logs", {**base, "evento": "reintento", "intento": 1, "motivo": "gateway 503", "espera_s": 5.0})
    publish(url, "logs", {**base, "evento": "consumido", "proveedor": "log"})


def test_events_reach_the_registered_endpoints_through_the_validator(tmp_path: Path, database_url: str) -> None:
    with (
        Receiver() as everything,
        Receiver() as sent_only,
        Receiver() as other_owner,
        isolated_vhost("cartero-webhooks-e2e") as amqp_url,
        serve_validator(
            database_url, validator_webhooks_key=WEBHOOKS_KEY, webhooks_allow_private_urls=True
        ) as validator,
    ):
        app = validator.tokens.owner("application", "webhooks-e2e")
        other = validator.tokens.owner("application", "webhooks-e2e-other")
        all_events = ["message.sent", "message.retrying", "message.failed"]
        first = register(validator.url, "application", app, everything.url, all_events)
        second = register(validator.url, "application", app, sent_only.url, ["message.sent"])
        register(validator.url, "application", other, other_owner.url, all_events)
        with serve_consumer_logs(amqp_url, tmp_path):
            process = start_consumer(
                "consumer_webhooks",
                tmp_path / "consumer_webhooks.log",
                AMQP_URL=amqp_url,
                VALIDATOR_URL=validator.url,
                VALIDATOR_WEBHOOKS_KEY=WEBHOOKS_KEY,
                WEBHOOKS_ALLOW_PRIVATE_URLS="true",
                CONSUMER_WEBHOOKS_METRICS_PORT="0",
                WEBHOOK_RETRY_DELAYS="200ms,500ms",
            )
            try:
                wait_consuming(amqp_url, "webhook_deliveries", process)
                consumer_events(amqp_url, "e2e-1", f"application:{app}")
                wait_until(lambda: len(everything.delivered()) == 2, timeout=20, what="both events")
                wait_until(lambda: len(sent_only.delivered()) == 1, timeout=10, what="the sent event")
                time.sleep(1.0)
            finally:
                stop_process(process)
    assert sorted(r.payload["type"] for r in everything.delivered()) == ["message.retrying", "message.sent"]
    assert [r.payload["type"] for r in sent_only.delivered()] == ["message.sent"]
    assert other_owner.got() == []
    for receiver, endpoint in ((everything, first), (sent_only, second)):
        for request in receiver.delivered():
            headers = request.headers
            assert request.payload["data"]["message_id"] == "e2e-1"
            by_hand = signature_by_hand(
                endpoint["secret"], headers["webhook-id"], headers["webhook-timestamp"], request.body
            )
            assert headers["webhook-signature"] == by_hand
            assert Webhook(endpoint["secret"]).verify(request.body, headers) == request.payload
