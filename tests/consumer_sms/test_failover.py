"""SMS_GATEWAY_URLS: failover between real HTTP gateways, each behind its circuit breaker, against
the real broker; the first test runs `python -m consumer_sms` and reads its `/metrics`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cartero_common.amqp import RetryPolicy, parse_delays
from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.settings import load_settings
from consumer_sms.__main__ import build_provider
from consumer_sms.config import Settings
from consumer_sms.handler import make_handler
from tests.consumers import FAST_DELAYS, Gateway, events, ledger_for, publish, running, sms, start_consumer
from tests.support import ROOT, drain, free_port, isolated_vhost, python_env, queue_depth, stop_process, wait_until

SERVICE = "consumer_sms"


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-sms-failover") as found:
        yield found


def refusing_url() -> str:
    """A gateway URL on a free port nobody listens on: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}/send"


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_a_refusing_b_up_every_sms_goes_through_b_and_as_breaker_opens_then_half_opens(
    url: str, tmp_path: Path
) -> None:
    a = refusing_url()
    port = free_port()
    ids = [f"fo{n}" for n in range(6)]
    for message_id in ids:
        publish(url, "cola_sms", sms(message_id))
    with Gateway() as b:
        env = {
            "AMQP_URL": url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/consumer_sms.db",
            "SMS_PROVIDER": "http",
            "SMS_GATEWAY_URLS": f"{a}, {b.url}",
            "SMS_GATEWAY_TIMEOUT": "2",
            "CONSUMER_SMS_METRICS_PORT": str(port),
            "CONSUMER_RETRY_DELAYS": FAST_DELAYS,
            "CONSUMER_MAX_ATTEMPTS": "3",
            "CONSUMER_BREAKER_FAILURES": "2",
            "CONSUMER_BREAKER_COOLDOWN_SECONDS": "3",
        }
        process = start_consumer(SERVICE, tmp_path / "consumer.log", **env)

        def scrape() -> str:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text

        def of_a(text: str, name: str, **labels: str) -> float:
            return metric(text, name, service=SERVICE, provider=a, **labels)

        try:
            wait_until(lambda: queue_depth(url, "logs") == len(ids), timeout=20, what="every consumido")
            metrics = scrape()
            # Two refusals opened a's circuit; the four after it did not call a at all.
            assert of_a(metrics, "provider_circuit_state") == 2
            assert of_a(metrics, "provider_attempts_total", outcome="transient") == 2
            assert of_a(metrics, "provider_attempts_total", outcome="skipped_open") == 4
            sent_by_b = metric(metrics, "provider_attempts_total", service=SERVICE, provider=b.url, outcome="sent")
            assert sent_by_b == len(ids)
            assert metric(metrics, "provider_circuit_state", service=SERVICE, provider=b.url) == 0
            assert metric(metrics, "provider_failovers_total", service=SERVICE) == len(ids)

            # After the cool-down a is half-open: the next SMS probes it.
            wait_until(lambda: of_a(scrape(), "provider_circuit_state") == 1, timeout=10, what="a half-open")
            publish(url, "cola_sms", sms("probe"))
            wait_until(lambda: queue_depth(url, "logs") == len(ids) + 1, timeout=10, what="the probe's consumido")
            metrics = scrape()
            assert of_a(metrics, "provider_attempts_total", outcome="transient") == 3  # probed, refused again
            assert of_a(metrics, "provider_circuit_state") == 2  # so open for another cool-down
        finally:
            stop_process(process)
        assert process.returncode == 0
        assert [r["body"]["id"] for r in b.requests] == [*ids, "probe"]
    found = events(url)
    assert [e["id"] for e in found] == [*ids, "probe"]
    assert all(e["evento"] == "consumido" and e["proveedor"] == b.url for e in found)
    assert queue_depth(url, "cola_sms") == 0 and queue_depth(url, "cola_sms.dlq") == 0


def loop_for(url: str, tmp_path: Path, **settings: object) -> ConsumerLoop:
    clock = FixedClock(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    provider = build_provider(Settings(sms_provider="http", sms_gateway_timeout=2, **settings))  # type: ignore[arg-type]
    handler = make_handler(provider, ledger=ledger_for(f"sqlite:///{tmp_path}/sms.db", "cola_sms"), clock=clock)
    policy = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))
    return ConsumerLoop(url=url, queue="cola_sms", handler=handler, policy=policy, batch_size=1, clock=clock)


def test_a_permanent_failure_does_not_fail_over(url: str, tmp_path: Path) -> None:
    with Gateway([400]) as b, Gateway() as c:
        with running(loop_for(url, tmp_path, sms_gateway_urls=f"{b.url},{c.url}")):
            publish(url, "cola_sms", sms("refused"))
            wait_until(lambda: queue_depth(url, "cola_sms.dlq") == 1, timeout=10, what="the dead letter")
            publish(url, "cola_sms", sms("next"))
            wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
        assert b.calls_for("refused") == 1 and c.requests == []
        assert b.calls_for("next") == 1  # b answered: its circuit stays closed, it is still first
    failed, consumed = events(url)
    assert failed["evento"] == "fallido" and "400" in failed["motivo"] and failed["intentos"] == 1
    assert "proveedor" not in failed
    assert consumed["evento"] == "consumido" and consumed["proveedor"] == b.url


def test_every_gateway_failing_is_one_retry_naming_each_then_delivered(url: str, tmp_path: Path) -> None:
    a = refusing_url()
    with Gateway([503]) as b:
        with running(loop_for(url, tmp_path, sms_gateway_urls=f"{a},{b.url}")):
            publish(url, "cola_sms", sms("both-down"))
            wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
        assert b.calls_for("both-down") == 2
    retry, consumed = events(url)
    assert retry["evento"] == "reintento" and retry["intento"] == 1
    assert retry["motivo"].startswith(f"no provider took it: {a}: SMS gateway unreachable")
    assert f"{b.url}: SMS gateway answered 503" in retry["motivo"]
    assert consumed["evento"] == "consumido" and consumed["proveedor"] == b.url


def test_a_redelivery_names_the_gateway_that_took_it_first(url: str, tmp_path: Path) -> None:
    a = refusing_url()
    with Gateway() as b:
        with running(loop_for(url, tmp_path, sms_gateway_urls=f"{a},{b.url}")):
            publish(url, "cola_sms", sms("twice"))
            wait_until(lambda: b.calls_for("twice") == 1, timeout=10, what="the first send")
            publish(url, "cola_sms", sms("twice"))  # as after a crash before the ack
            wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
        assert b.calls_for("twice") == 1
    first, again = (body for _, body in drain(url, "logs"))
    assert first == again  # byte for byte: the message log keeps one
    assert json.loads(first)["proveedor"] == b.url


def test_credentials_and_query_stay_out_of_the_event(url: str, tmp_path: Path) -> None:
    with Gateway() as b:
        secret_url = b.url.replace("http://", "http://user:s3cret@") + "?key=s3cret"
        with running(loop_for(url, tmp_path, sms_gateway_urls=secret_url)):
            publish(url, "cola_sms", sms("private"))
            wait_until(lambda: queue_depth(url, "logs") == 1, timeout=10, what="the event")
    (event,) = events(url)
    assert event["proveedor"] == b.url and "s3cret" not in json.dumps(event)


def test_the_one_gateway_setting_still_works_and_setting_both_is_refused() -> None:
    assert Settings(sms_gateway_url="http://gw.example/send").gateway_urls == ("http://gw.example/send",)
    with pytest.raises(ValueError, match="set SMS_GATEWAY_URLS or SMS_GATEWAY_URL, not both"):
        Settings(sms_gateway_url="http://a.example/", sms_gateway_urls="http://b.example/")
    assert Settings(sms_gateway_urls=" http://a.example/x , https://b.example:8443/y ").gateway_urls == (
        "http://a.example/x",
        "https://b.example:8443/y",
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SMS_GATEWAY_URLS": "http://ok.example/,ftp://user:s3cret@files.example/"}, "not an http(s) URL with a host"),
        ({"SMS_GATEWAY_URLS": "http://ok.example:99999/"}, "Port out of range"),
        ({"SMS_GATEWAY_URLS": "http://a.example/x,http://a.example/x?key=s3cret"}, "a gateway is listed twice"),
        ({"SMS_GATEWAY_URLS": "http://a.example/", "SMS_GATEWAY_URL": "http://b.example/"}, "not both"),
        ({"SMS_GATEWAY_URL": "gateway.example/send"}, "not an http(s) URL with a host"),
    ],
)
def test_bad_gateway_settings_are_refused_with_a_clear_message(
    env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as refused:
        load_settings(Settings, SERVICE)
    message = str(refused.value.code)
    assert message.startswith("consumer_sms: invalid settings, not starting") and says in message
    assert "s3cret" not in message  # a URL's password or key is never printed


def test_the_process_refuses_to_start_on_a_bad_gateway_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", SERVICE],
        cwd=ROOT,
        env=python_env(SMS_PROVIDER="http", SMS_GATEWAY_URLS="http://ok.example/,ftp://user:s3cret@files.example/"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("consumer_sms: invalid settings, not starting\n  SMS_GATEWAY_URLS: ")
    assert "not an http(s) URL with a host: 'ftp://files.example/'" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
