"""SMTP_HOSTS: failover between SMTP servers (a refusing port, a real aiosmtpd), against the real
broker; settings checked as the service reads them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from cartero_common.amqp import RetryPolicy, parse_delays
from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.settings import load_settings
from consumer_email.__main__ import build_provider
from consumer_email.config import Settings
from consumer_email.handler import make_handler
from tests.consumer_email.conftest import SENDER, ScriptedSmtp
from tests.consumers import FAST_DELAYS, events, ledger_for, publish, running
from tests.consumers import email as email_message
from tests.support import free_port, isolated_vhost, queue_depth, wait_until


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-email-failover") as found:
        yield found


def loop_for(url: str, tmp_path: Path, settings: Settings) -> ConsumerLoop:
    clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    ledger = ledger_for(f"sqlite:///{tmp_path}/email.db", "correos")
    handler = make_handler(build_provider(settings), sender=SENDER, ledger=ledger, clock=clock)
    policy = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))
    return ConsumerLoop(url=url, queue="correos", handler=handler, policy=policy, batch_size=1, clock=clock)


def attempts(provider: str, outcome: str) -> float:
    labels = {"service": "consumer_email", "provider": provider, "outcome": outcome}
    return REGISTRY.get_sample_value("provider_attempts_total", labels) or 0.0


def test_first_server_refusing_the_second_delivers_and_is_named(
    url: str, tmp_path: Path, smtp_server: tuple[ScriptedSmtp, Controller]
) -> None:
    server, controller = smtp_server
    refusing = f"127.0.0.1:{free_port()}"
    second = f"127.0.0.1:{controller.port}"
    settings = Settings(smtp_hosts=f"{refusing},{second}", smtp_timeout=2, consumer_breaker_failures=2)
    before = attempts(refusing, "transient"), attempts(refusing, "skipped_open")
    with running(loop_for(url, tmp_path, settings)):
        for n in range(3):
            publish(url, "correos", email_message(f"m{n}"))
        wait_until(lambda: queue_depth(url, "logs") == 3, timeout=15, what="three events")
    assert sorted(mail["Message-ID"] for mail in server.delivered) == [f"<m{n}@cartero.example>" for n in range(3)]
    found = events(url)
    assert [e["evento"] for e in found] == ["consumido"] * 3
    assert all(e["proveedor"] == second for e in found)
    # Refused twice, then its circuit is open and the third does not try it.
    assert attempts(refusing, "transient") - before[0] == 2
    assert attempts(refusing, "skipped_open") - before[1] == 1


def test_a_5xx_does_not_fail_over(url: str, tmp_path: Path) -> None:
    first, second = ScriptedSmtp(rcpt=["550 5.1.1 No such mailbox"]), ScriptedSmtp()
    controllers = [Controller(h, hostname="127.0.0.1", port=free_port()) for h in (first, second)]
    for controller in controllers:
        controller.start()
    try:
        hosts = ",".join(f"127.0.0.1:{c.port}" for c in controllers)
        with running(loop_for(url, tmp_path, Settings(smtp_hosts=hosts, smtp_timeout=2))):
            publish(url, "correos", email_message("nobody"))
            wait_until(lambda: queue_depth(url, "correos.dlq") == 1, timeout=10, what="the dead letter")
    finally:
        for controller in controllers:
            controller.stop()
    assert first.delivered == [] and second.delivered == [] and second.attempts == 0
    (failed,) = events(url)
    assert failed["evento"] == "fallido" and "550" in failed["motivo"]


def test_the_one_host_setting_still_works_with_smtp_port() -> None:
    assert Settings(smtp_host="relay.example", smtp_port=25).smtp_servers == [("relay.example", 25)]
    assert Settings().smtp_servers == [("localhost", 1025)]
    assert Settings(smtp_hosts="a.example, b.example:2525,[::1]:25", smtp_port=587).smtp_servers == [
        ("a.example", 587),
        ("b.example", 2525),
        ("::1", 25),
    ]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SMTP_HOSTS": "mail.example,mail.example:99999"}, "Port out of range"),
        ({"SMTP_HOSTS": "user:s3cret@mail.example"}, "not host[:port]"),
        ({"SMTP_HOSTS": "mail.example/relay"}, "not host[:port]"),
        ({"SMTP_HOSTS": "mail_relay"}, "not a host name or address"),
        ({"SMTP_HOSTS": "a.example,a.example:1025"}, "listed twice"),
        ({"SMTP_HOSTS": "a.example", "SMTP_HOST": "b.example"}, "not both"),
        ({"SMTP_HOST": "b.example:25"}, "not a host name or address"),
    ],
)
def test_bad_smtp_servers_are_refused_with_a_clear_message(
    env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as refused:
        load_settings(Settings, "consumer_email")
    message = str(refused.value.code)
    assert message.startswith("consumer_email: invalid settings, not starting") and says in message
