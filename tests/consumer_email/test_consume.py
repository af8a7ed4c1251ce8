"""consumer_email against the real broker, a real SMTP server (aiosmtpd) and real .eml files."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from cartero_common.amqp import RetryPolicy, parse_delays
from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from consumer_email.handler import make_handler
from consumer_email.providers import EmailProvider, FileProvider, SmtpProvider
from tests.consumer_email.conftest import SENDER, ScriptedSmtp
from tests.consumers import FAST_DELAYS, events, ledger_for, odd_json, publish, running
from tests.consumers import email as email_message
from tests.support import drain, free_port, isolated_vhost, queue_depth, wait_until


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-email") as found:
        yield found


def loop_for(url: str, provider: EmailProvider, tmp_path: Path) -> ConsumerLoop:
    clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    ledger = ledger_for(f"sqlite:///{tmp_path}/email.db", "correos")
    handler = make_handler(provider, sender=SENDER, ledger=ledger, clock=clock)
    policy = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))
    batch = 10 if provider.batchable else 1
    return ConsumerLoop(url=url, queue="correos", handler=handler, policy=policy, batch_size=batch, clock=clock)


def smtp(controller: Controller) -> SmtpProvider:
    return SmtpProvider(controller.hostname, controller.port, timeout=5)


def test_smtp_delivers_a_utf8_email(url: str, tmp_path: Path, smtp_server: tuple[ScriptedSmtp, Controller]) -> None:
    server, controller = smtp_server
    with running(loop_for(url, smtp(controller), tmp_path)):
        publish(url, "correos", email_message("e1"))
        publish(url, "correos", email_message("e2"), php=True)
        wait_until(lambda: len(server.delivered) == 2, timeout=10, what="two emails")
        wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
    mail = server.delivered[0]
    assert mail["Subject"] == "Cita confirmada — mañana"
    assert mail["To"] == "ana@example.com"
    assert mail["From"] == SENDER
    assert mail["Message-ID"] == "<e1@cartero.example>"
    assert mail.get_content().strip() == "¡Hola, Ana! Te esperamos el jueves."
    found = events(url)
    assert [e["evento"] for e in found] == ["consumido", "consumido"]
    assert all(e["cuerpo"] == "Registro consumido por un consumidor" for e in found)  # the body stays out


def test_smtp_421_is_retried_then_delivered(
    url: str, tmp_path: Path, smtp_server: tuple[ScriptedSmtp, Controller]
) -> None:
    server, controller = smtp_server
    server.data = ["421 4.3.2 Service not available, try later"]
    with running(loop_for(url, smtp(controller), tmp_path)):
        publish(url, "correos", email_message("later"))
        wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
    assert server.attempts == 2 and len(server.delivered) == 1
    found = events(url)
    assert [(e["evento"], e.get("intento")) for e in found] == [("reintento", 1), ("consumido", None)]
    assert "421" in found[0]["motivo"]
    assert queue_depth(url, "correos.dlq") == 0


def test_smtp_550_goes_to_the_dlq(url: str, tmp_path: Path, smtp_server: tuple[ScriptedSmtp, Controller]) -> None:
    server, controller = smtp_server
    server.rcpt = ["550 5.1.1 No such mailbox"]
    with running(loop_for(url, smtp(controller), tmp_path)):
        publish(url, "correos", email_message("nobody"))
        wait_until(lambda: queue_depth(url, "correos.dlq") == 1, timeout=10, what="dead letter")
        publish(url, "correos", email_message("next"))
        wait_until(lambda: len(server.delivered) == 1, timeout=10, what="the next one delivered")
    found = events(url)
    assert found[0]["evento"] == "fallido" and "550" in found[0]["motivo"] and found[0]["intentos"] == 1
    assert found[1]["evento"] == "consumido" and found[1]["id"] == "next"


def test_smtp_server_down_is_transient(url: str, tmp_path: Path) -> None:
    provider = SmtpProvider("127.0.0.1", free_port(), timeout=1)
    with running(loop_for(url, provider, tmp_path)):
        publish(url, "correos", email_message("unreachable"))
        wait_until(lambda: queue_depth(url, "correos.dlq") == 1, timeout=15, what="dead letter after retries")
    assert [e["evento"] for e in events(url)] == ["reintento", "reintento", "fallido"]


def test_file_provider_writes_one_eml_per_message(url: str, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    with running(loop_for(url, FileProvider(mail_dir), tmp_path)):
        for n in range(3):
            publish(url, "correos", email_message(f"f{n}"))
        publish(url, "correos", email_message("f0"))  # a redelivery: the same file, not a fourth
        publish(url, "correos", {"id": "bad", "asunto": "no recipient", "cuerpo": "x"})
        publish(url, "correos", email_message("bad-address", destinatario="not an address"))
        wait_until(lambda: queue_depth(url, "correos.dlq") == 2, timeout=10, what="two dead letters")
        wait_until(lambda: queue_depth(url, "logs") == 6, timeout=10, what="six events")
    assert sorted(p.name for p in mail_dir.iterdir()) == ["f0.eml", "f1.eml", "f2.eml"]
    parsed = email.message_from_bytes((mail_dir / "f1.eml").read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Cita confirmada — mañana"
    assert parsed.get_content().strip() == "¡Hola, Ana! Te esperamos el jueves."
    outcomes = sorted(e["evento"] for e in events(url))
    assert outcomes == ["consumido"] * 4 + ["fallido", "rechazado"]


def test_smtp_login_and_a_refused_login(url: str, tmp_path: Path) -> None:
    server = ScriptedSmtp()

    def authenticator(_server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = data.login == b"cartero" and data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        server, hostname="127.0.0.1", port=free_port(), authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        good = SmtpProvider(controller.hostname, controller.port, username="cartero", password="s3cret", timeout=5)
        with running(loop_for(url, good, tmp_path)):
            publish(url, "correos", email_message("authed"))
            wait_until(lambda: len(server.delivered) == 1, timeout=10, what="delivered after login")
        bad = SmtpProvider(controller.hostname, controller.port, username="cartero", password="wrong", timeout=5)
        with running(loop_for(url, bad, tmp_path)):
            publish(url, "correos", email_message("refused-login"))
            wait_until(lambda: queue_depth(url, "correos.dlq") == 1, timeout=10, what="dead letter")
    finally:
        controller.stop()
    failed = [e for e in events(url) if e["evento"] == "fallido"]
    assert len(failed) == 1 and "535" in failed[0]["motivo"]  # a wrong password will not fix itself


def test_json_past_the_parsers_limits_is_dead_lettered_at_once_without_failing_its_batch(
    url: str, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "mail"
    odd = odd_json(email_message("odd"))
    with running(loop_for(url, FileProvider(mail_dir), tmp_path)):  # batches of 10
        publish(url, "correos", email_message("before"))
        for body in odd:
            publish(url, "correos", body)
        publish(url, "correos", email_message("after"))
        wait_until(lambda: queue_depth(url, "correos.dlq") == len(odd), timeout=10, what="the odd ones dead")
        wait_until(lambda: queue_depth(url, "logs") == len(odd) + 2, timeout=10, what="every event")
    assert sorted(p.name for p in mail_dir.iterdir()) == ["after.eml", "before.eml"]
    assert sorted(e["evento"] for e in events(url)) == ["consumido"] * 2 + ["rechazado"] * len(odd)
    dead = drain(url, "correos.dlq")
    assert [body for _, body in dead] == odd
    assert all(props.headers["x-cartero-attempt"] == 1 for props, _ in dead)


def test_a_php_queued_subject_with_any_line_break_is_sent_on_one_line(url: str, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    subject = "Cita\u2028confirmada\x0bpara\x1cel\x85jueves\u2029\x0c\x1d\x1e\r\nya"
    with running(loop_for(url, FileProvider(mail_dir), tmp_path)):
        publish(url, "correos", {**email_message("lines"), "asunto": subject}, php=True)
        wait_until(lambda: queue_depth(url, "logs") == 1, timeout=10, what="the event")
    assert [e["evento"] for e in events(url)] == ["consumido"]
    parsed = email.message_from_bytes((mail_dir / "lines.eml").read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Cita confirmada para el jueves ya"
