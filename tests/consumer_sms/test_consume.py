"""consumer_sms's handler on the shared loop, against the real broker and a real SQLite ledger."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from cartero_common.amqp import RetryPolicy, parse_delays
from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.wire import SmsMessage
from consumer_sms.handler import make_handler
from consumer_sms.providers import HttpGateway
from tests.consumers import FAST_DELAYS, Gateway, events, ledger_for, odd_json, publish, running, sms, vhost_of
from tests.support import drain, isolated_vhost, queue_depth, rabbitmq_roles, unavailable, wait_until

POLICY = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))


class RecordingProvider:
    batchable = True

    def __init__(self) -> None:
        self.sent: list[SmsMessage] = []

    def send(self, message: SmsMessage) -> None:
        self.sent.append(message)


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-sms") as found:
        yield found


def loop_for(url: str, provider: object, tmp_path: Path, *, batch_size: int = 10) -> ConsumerLoop:
    clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    ledger = ledger_for(f"sqlite:///{tmp_path}/sms.db", "cola_sms")
    handler = make_handler(provider, ledger=ledger, clock=clock)  # type: ignore[arg-type]
    return ConsumerLoop(
        url=url, queue="cola_sms", handler=handler, policy=POLICY, prefetch=20, batch_size=batch_size, clock=clock
    )


def test_sms_consumed_and_reported_ours_and_php(url: str, tmp_path: Path) -> None:
    provider = RecordingProvider()
    with running(loop_for(url, provider, tmp_path)):
        publish(url, "cola_sms", sms("s1"))
        # A PHP sender's message: no properties at all, not persistent, no `evento`.
        publish(url, "cola_sms", {"id": "p1", "mensaje": "x", "telefono": "600 111 222"}, php=True)
        wait_until(lambda: len(provider.sent) == 2, timeout=10, what="two sends")
        wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
    assert queue_depth(url, "cola_sms") == 0
    assert provider.sent[1].telefono == "600111222"  # normalized before the provider sees it
    found = events(url)
    assert [e["id"] for e in found] == ["s1", "p1"]
    assert all(e["evento"] == "consumido" and e["cola"] == "cola_sms" for e in found)
    assert found[0]["fecha_consumo"] == "2026-07-01 10:00:00"
    assert found[0]["cuerpo"] == "Registro consumido por un consumidor"


def test_a_redelivered_message_is_not_sent_twice(url: str, tmp_path: Path) -> None:
    provider = RecordingProvider()
    with running(loop_for(url, provider, tmp_path)):
        publish(url, "cola_sms", sms("dup"))
        wait_until(lambda: len(provider.sent) == 1, timeout=10, what="first send")
        publish(url, "cola_sms", sms("dup"))  # the same message again, as after a crash
        publish(url, "cola_sms", sms("next"))
        wait_until(lambda: queue_depth(url, "logs") == 3, timeout=10, what="three events")
    assert [m.id for m in provider.sent] == ["dup", "next"]
    bodies = [body for _, body in drain(url, "logs")]
    # The duplicate's `consumido` is the first one byte for byte, so consumer_logs keeps one.
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize("batch_size", [1, 10])
def test_poison_goes_to_the_dlq_at_once_and_consuming_goes_on(url: str, tmp_path: Path, batch_size: int) -> None:
    provider = RecordingProvider()
    poison: list[bytes | dict[str, object]] = [
        b"this is not json {",
        b"\xff\xfe\x00 not utf-8",
        b'["a", "list"]',
        {"id": "missing-telefono", "mensaje": "hola"},
        {"id": "wrong-types", "mensaje": ["hola"], "telefono": 600111222},
        {"id": "huge", "mensaje": "x" * (1024 * 1024), "telefono": "600111222"},
    ]
    with running(loop_for(url, provider, tmp_path, batch_size=batch_size)):
        for body in poison:
            publish(url, "cola_sms", body)
        publish(url, "cola_sms", sms("good"))
        wait_until(lambda: [m.id for m in provider.sent] == ["good"], timeout=10, what="the good one sent")
        wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 6, timeout=10, what="six dead letters")
    found = events(url)
    rejected = [e for e in found if e["evento"] == "rechazado"]
    assert len(rejected) == 6
    assert {e["id"] for e in rejected} == {None, "missing-telefono", "wrong-types", "huge"}
    assert all(e["dlq"] == "cola_sms.dlq" and e["motivo"] for e in rejected)
    assert "x" * 100 not in json.dumps(found)  # the body is never copied into the log
    dead = drain(url, "cola_sms.dlq")
    assert dead[0][1] == b"this is not json {"  # untouched
    assert dead[0][0].headers["x-cartero-outcome"] == "rechazado"
    assert "not UTF-8 JSON" in dead[0][0].headers["x-cartero-reason"]


def test_invalid_phone_is_a_permanent_failure(url: str, tmp_path: Path) -> None:
    provider = RecordingProvider()
    with running(loop_for(url, provider, tmp_path)):
        publish(url, "cola_sms", sms("bad-phone", telefono="12"))
        wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 1, timeout=10, what="dead letter")
    assert provider.sent == []
    (failed,) = events(url)
    assert failed["evento"] == "fallido" and "invalid phone" in failed["motivo"] and failed["intentos"] == 1


def test_gateway_500_twice_then_200_is_delivered_once_after_two_retries(url: str, tmp_path: Path) -> None:
    with Gateway([500, 503]) as gateway:
        provider = HttpGateway(gateway.url, timeout=2)
        with running(loop_for(url, provider, tmp_path, batch_size=1)):
            publish(url, "cola_sms", sms("flaky"))
            wait_until(lambda: queue_depth(url, "logs") == 3, timeout=15, what="three events")
            assert queue_depth(url, "cola_sms.dlq") == 0
    assert gateway.calls_for("flaky") == 3
    assert [r["idempotency_key"] for r in gateway.requests] == ["flaky"] * 3
    found = events(url)
    assert [(e["evento"], e.get("intento")) for e in found] == [("reintento", 1), ("reintento", 2), ("consumido", None)]
    assert "500" in found[0]["motivo"] and found[1]["espera_s"] == 0.4


def test_gateway_that_never_recovers_dead_letters_after_the_last_attempt(url: str, tmp_path: Path) -> None:
    with Gateway([500, 500, 500, 500]) as gateway:
        with running(loop_for(url, HttpGateway(gateway.url, timeout=2), tmp_path, batch_size=1)):
            publish(url, "cola_sms", sms("down"))
            wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 1, timeout=15, what="dead letter")
        assert gateway.calls_for("down") == 3  # max_attempts
    found = events(url)
    assert [e["evento"] for e in found] == ["reintento", "reintento", "fallido"]
    assert found[-1]["intentos"] == 3 and "gave up after 3 attempts" in found[-1]["motivo"]


def test_gateway_4xx_is_permanent(url: str, tmp_path: Path) -> None:
    with Gateway([400]) as gateway:
        with running(loop_for(url, HttpGateway(gateway.url, timeout=2), tmp_path, batch_size=1)):
            publish(url, "cola_sms", sms("refused"))
            wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 1, timeout=10, what="dead letter")
        assert gateway.calls_for("refused") == 1
    assert [e["evento"] for e in events(url)] == ["fallido"]


def php(script: str, url: str, *args: str) -> str:
    """`php <script> HOST PORT USER PASSWORD VHOST ...` with the user and password of `url`."""
    if shutil.which("php") is None or not Path("/usr/share/php/PhpAmqpLib/autoload.php").exists():
        unavailable("php-cli with php-amqplib (local/install-test-deps.sh installs them)")
    parsed = urlparse(url)
    user, password = unquote(parsed.username or ""), unquote(parsed.password or "")
    host, port = parsed.hostname or "127.0.0.1", str(parsed.port or 5672)
    command = ["php", str(Path(__file__).with_name(script)), host, port, user, password]
    result = subprocess.run([*command, vhost_of(url), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_real_php_senders_message_is_processed(url: str, tmp_path: Path) -> None:
    """PHP as the `php` role, our consumer as the `consumer_sms` role, both made by rabbitmq-setup."""
    provider = RecordingProvider()
    with rabbitmq_roles(vhost_of(url)) as roles, running(loop_for(roles["consumer_sms"], provider, tmp_path)):
        # The PHP client declares `cola_sms` after we did: no 406, the arguments match (none).
        body = json.dumps({"id": "php-1", "mensaje": "¡hola!", "telefono": "600111222"})
        php("php_publish.php", roles["php"], "cola_sms", body)
        wait_until(lambda: [m.id for m in provider.sent] == ["php-1"], timeout=10, what="the PHP message sent")
        wait_until(lambda: queue_depth(url, "logs") == 1, timeout=10, what="its event")
    (event,) = events(url)
    assert event["evento"] == "consumido" and event["mensaje"] == "¡hola!"


def test_the_php_consumer_takes_what_the_sender_role_published(url: str) -> None:
    """The seed's PHP consumer (basic_get and ack on cola_sms) as the `php` role."""
    with rabbitmq_roles(vhost_of(url)) as roles:
        publish(roles["sender"], "cola_sms", sms("for-php"), passive=True)
        taken = php("php_get.php", roles["php"], "cola_sms")
        assert json.loads(taken)["id"] == "for-php"
        assert queue_depth(url, "cola_sms") == 0
        assert php("php_get.php", roles["php"], "cola_sms") == ""


@pytest.mark.parametrize("batch_size", [1, 10])
def test_json_past_the_parsers_limits_is_dead_lettered_at_once_without_failing_its_batch(
    url: str, tmp_path: Path, batch_size: int
) -> None:
    provider = RecordingProvider()
    odd = odd_json(sms("odd"))
    with running(loop_for(url, provider, tmp_path, batch_size=batch_size)):
        publish(url, "cola_sms", sms("before"))
        for body in odd:
            publish(url, "cola_sms", body)
        publish(url, "cola_sms", sms("after"))
        wait_until(lambda: queue_depth(url, "cola_sms.dlq") == len(odd), timeout=10, what="the odd ones dead")
        wait_until(lambda: queue_depth(url, "logs") == len(odd) + 2, timeout=10, what="every event")
    assert [m.id for m in provider.sent] == ["before", "after"]
    found = events(url)
    assert sorted(e["evento"] for e in found) == ["consumido"] * 2 + ["rechazado"] * len(odd)
    dead = drain(url, "cola_sms.dlq")
    assert [body for _, body in dead] == odd  # untouched, in order, each on its first attempt
    assert all(props.headers["x-cartero-outcome"] == "rechazado" for props, _ in dead)
    assert all(props.headers["x-cartero-attempt"] == 1 for props, _ in dead)
    assert queue_depth(url, "cola_sms") == 0


def test_an_id_with_a_control_character_is_dead_lettered_at_once_without_failing_its_batch(
    url: str, database_url: str
) -> None:
    """PostgreSQL refuses NUL in the ledger's key: such an id would fail its batch on every try."""
    provider = RecordingProvider()
    clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    handler = make_handler(provider, ledger=ledger_for(database_url, "cola_sms"), clock=clock)
    loop = ConsumerLoop(url=url, queue="cola_sms", handler=handler, policy=POLICY, batch_size=10, clock=clock)
    odd = [sms("ctl-\x00-nul"), sms("ctl-\n-newline"), sms("ctl-\u2028-separator"), sms("ctl-\x7f-delete")]
    with running(loop):
        publish(url, "cola_sms", sms("ctl-before"))
        for message in odd:
            publish(url, "cola_sms", json.dumps(message).encode())  # as bytes: no AMQP message-id
        publish(url, "cola_sms", sms("ctl-after"))
        wait_until(lambda: queue_depth(url, "cola_sms.dlq") == len(odd), timeout=10, what="the odd ones dead")
        wait_until(lambda: queue_depth(url, "logs") == len(odd) + 2, timeout=10, what="every event")
    assert [m.id for m in provider.sent] == ["ctl-before", "ctl-after"]
    assert sorted(e["evento"] for e in events(url)) == ["consumido"] * 2 + ["rechazado"] * len(odd)
    assert all(props.headers["x-cartero-attempt"] == 1 for props, _ in drain(url, "cola_sms.dlq"))
