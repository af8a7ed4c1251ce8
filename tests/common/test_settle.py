"""What the loop publishes for each outcome, and the retry arithmetic (no broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pika
import pytest

from cartero_common.amqp import RetryPolicy, delay_label, parse_delays, retry_queue
from cartero_common.consume import Delivery, Done, PermanentFailure, TransientFailure, Unreadable
from cartero_common.consume.outcomes import Publish
from cartero_common.consume.settle import settle

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, delays=(5.0, 30.0))
MESSAGE = {"id": "m1", "mensaje": "hola", "telefono": "600111222", "fecha": "f"}


def delivery(attempt: int | None = None, *, php: bool = False) -> Delivery:
    headers = {"x-cartero-attempt": attempt} if attempt else None
    properties = pika.BasicProperties() if php else pika.BasicProperties(message_id="m1", headers=headers)
    return Delivery("cola_sms", json.dumps(MESSAGE).encode(), properties, False, 1)


def test_a_done_outcome_publishes_what_the_handler_hands_on_before_its_event() -> None:
    extra = Publish("webhooks", b'{"type": "message.sent"}', pika.BasicProperties(delivery_mode=2))
    settled = settle(
        delivery(),
        Done(MESSAGE, publishes=(extra,)),
        policy=RetryPolicy(),
        report_to="logs",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        timezone="UTC",
    )
    assert [p.queue for p in settled.publishes] == ["webhooks", "logs"]
    assert settled.publishes[0] is extra


def test_delays_parse_and_name_their_queues() -> None:
    assert parse_delays("5s, 30, 2m,10m") == (5.0, 30.0, 120.0, 600.0)
    assert parse_delays("200ms,1.5s") == (0.2, 1.5)
    # Hours (the webhook schedule), named in minutes: the queue-name pattern of the roles stays ms|s|m.
    assert parse_delays("2h,10h") == (7200.0, 36000.0)
    assert retry_queue("webhook_deliveries", 36000.0) == "webhook_deliveries.retry.600m"
    assert [delay_label(d) for d in (0.2, 1.5, 5, 120, 600)] == ["200ms", "1500ms", "5s", "2m", "10m"]
    assert retry_queue("cola_sms", 5) == "cola_sms.retry.5s"
    for bad in ("", "0", "-5", "soon"):
        with pytest.raises(ValueError):
            parse_delays(bad)


def test_the_last_delay_repeats_and_only_used_delays_get_queues() -> None:
    policy = RetryPolicy(max_attempts=5, delays=(1.0, 2.0))
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 2.0, 2.0]
    assert policy.used_delays() == (1.0, 2.0)
    assert RetryPolicy(max_attempts=2, delays=(1.0, 2.0)).used_delays() == (1.0,)
    assert RetryPolicy(max_attempts=1).used_delays() == ()


def test_done_reports_consumido_with_its_first_time() -> None:
    first = settle(delivery(), Done(MESSAGE, NOW), policy=POLICY, report_to="logs", now=NOW, timezone="Europe/Madrid")
    later = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
    again = settle(
        delivery(), Done(MESSAGE, NOW, duplicate=True), policy=POLICY, report_to="logs", now=later, timezone="UTC"
    )
    assert (first.outcome, again.outcome) == ("consumido", "duplicado")
    event = json.loads(first.publishes[0].body)
    assert event["evento"] == "consumido" and event["fecha_consumo"] == "2026-01-15 13:00:00"
    assert first.publishes[0].properties.message_id == "m1"
    assert json.loads(again.publishes[0].body)["fecha_consumo"] == "2026-01-15 12:00:00"


def test_transient_failure_goes_to_the_retry_queue_with_the_next_attempt() -> None:
    settled = settle(
        delivery(attempt=2, php=False),
        TransientFailure("gateway 503", message=MESSAGE),
        policy=POLICY,
        report_to="logs",
        now=NOW,
        timezone="UTC",
    )
    copy, event = settled.publishes
    assert settled.outcome == "reintento"
    assert copy.queue == "cola_sms.retry.30s" and copy.body == delivery().body
    assert copy.properties.headers["x-cartero-attempt"] == 3 and copy.properties.delivery_mode == 2
    assert json.loads(event.body) | {} == {
        **MESSAGE,
        "cuerpo": "Registro consumido por un consumidor",
        "fecha_consumo": "2026-01-15 12:00:00",
        "evento": "reintento",
        "cola": "cola_sms",
        "intento": 2,
        "motivo": "gateway 503",
        "espera_s": 30.0,
        "proximo_intento": "2026-01-15T12:00:30.000+00:00",
    }


def test_a_php_message_is_made_persistent_before_it_waits() -> None:
    settled = settle(delivery(php=True), TransientFailure("x"), policy=POLICY, report_to=None, now=NOW, timezone="UTC")
    (copy,) = settled.publishes
    assert copy.properties.delivery_mode == 2 and copy.properties.headers == {"x-cartero-attempt": 2}


def test_last_attempt_and_permanent_failures_are_dead_lettered() -> None:
    last = settle(
        delivery(attempt=3), TransientFailure("503"), policy=POLICY, report_to="logs", now=NOW, timezone="UTC"
    )
    permanent = settle(delivery(), PermanentFailure("550"), policy=POLICY, report_to="logs", now=NOW, timezone="UTC")
    for settled, attempts in ((last, 3), (permanent, 1)):
        dead, event = settled.publishes
        assert settled.outcome == "fallido" and dead.queue == "cola_sms.dlq"
        assert dead.properties.headers["x-cartero-outcome"] == "fallido"
        assert dead.properties.headers["x-cartero-queue"] == "cola_sms"
        assert json.loads(event.body)["intentos"] == attempts
        assert json.loads(event.body)["dlq"] == "cola_sms.dlq"
    assert "gave up after 3 attempts" in last.reason  # type: ignore[operator]


def test_unreadable_is_rejected_without_its_body() -> None:
    settled = settle(delivery(), Unreadable("not JSON"), policy=POLICY, report_to="logs", now=NOW, timezone="UTC")
    dead, event = settled.publishes
    assert settled.outcome == "rechazado"
    assert dead.properties.headers["x-cartero-outcome"] == "rechazado"
    body = json.loads(event.body)
    assert body["evento"] == "rechazado" and body["id"] == "m1" and body["motivo"] == "not JSON"
    assert "mensaje" not in body


def test_no_events_when_there_is_nowhere_to_report() -> None:
    assert settle(delivery(), Done(MESSAGE), policy=POLICY, report_to=None, now=NOW, timezone="UTC").publishes == ()


def test_consumido_names_the_provider_and_a_duplicate_repeats_it_byte_for_byte() -> None:
    taken = Done(MESSAGE, NOW, provider="http://gateway-b/send")
    first = settle(delivery(), taken, policy=POLICY, report_to="logs", now=NOW, timezone="UTC")
    later = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
    again = settle(
        delivery(),
        Done(MESSAGE, NOW, duplicate=True, provider="http://gateway-b/send"),
        policy=POLICY,
        report_to="logs",
        now=later,
        timezone="UTC",
    )
    assert json.loads(first.publishes[0].body)["proveedor"] == "http://gateway-b/send"
    assert first.publishes[0].body == again.publishes[0].body
    unnamed = settle(delivery(), Done(MESSAGE, NOW), policy=POLICY, report_to="logs", now=NOW, timezone="UTC")
    assert "proveedor" not in json.loads(unnamed.publishes[0].body)
