"""A slow or vanishing broker: no use is ever over-spent, no message delivered twice, and every
kept use is settled. The real broker, consumers, message log and validator; between the sender
and the broker, a proxy that holds or drops its frames (`tests.tcp_proxy`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import pytest
from prometheus_client import REGISTRY

from sender.app import create_app
from sender.config import Settings
from tests.consumer_logs.support import READ_KEY
from tests.consumers import Gateway, start_consumer, wait_consuming
from tests.support import (
    ROOT,
    free_port,
    isolated_vhost,
    python_env,
    queue_depth,
    rabbit_api,
    served,
    stop_process,
    wait_http,
    wait_until,
)
from tests.tcp_proxy import Proxy, proxy_to
from tests.token_validator.support import SERVICE_KEY, RunningValidator, serve_validator
from token_validator import reconcile

pytestmark = pytest.mark.integration

PUBLISH_TIMEOUT = 1.0
HOLD = 2.5  # longer than PUBLISH_TIMEOUT: the confirm comes late
RECONCILE_AFTER = 3.0
RECONCILE_EVERY = 0.5
SMS = {"mensaje": "hola", "telefono": "600111222"}
# What these tests measured, to look at (git-ignored): uses counted against messages delivered.
FIGURES = ROOT / "test-artifacts" / "slow-broker.json"


def _record(name: str, **figures: float) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    found[name] = figures
    FIGURES.write_text(json.dumps(found, indent=2, sort_keys=True))


@dataclass
class Suite:
    amqp_url: str
    vhost_path: str
    validator: RunningValidator
    gateway: Gateway


def _migrate(service: str, log: Path, **env: str) -> None:
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", service, "migrate"],
            cwd=ROOT,
            env=python_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """consumer_sms (to a real HTTP gateway) and consumer_logs on one vhost, and a validator that
    reconciles against that message log within seconds."""
    tmp = tmp_path_factory.mktemp("slow-broker")
    logs_port = free_port()
    with isolated_vhost("cartero-slow") as amqp_url, Gateway() as gateway:
        sms_env = {
            "AMQP_URL": amqp_url,
            "DATABASE_URL": f"sqlite:///{tmp}/consumer_sms.db",
            "SMS_PROVIDER": "http",
            "SMS_GATEWAY_URL": gateway.url,
            "CONSUMER_SMS_METRICS_PORT": "0",
            "CONSUMER_RETRY_DELAYS": "200ms",
        }
        logs_env = {
            "AMQP_URL": amqp_url,
            "DATABASE_URL": f"sqlite:///{tmp}/consumer_logs.db",
            "CONSUMER_LOGS_PORT": str(logs_port),
            "CONSUMER_LOGS_READ_KEY": READ_KEY,
        }
        _migrate("consumer_sms", tmp / "consumer_sms.log", **sms_env)
        _migrate("consumer_logs", tmp / "consumer_logs.log", **logs_env)
        sms = start_consumer("consumer_sms", tmp / "consumer_sms.log", **sms_env)
        logs = start_consumer("consumer_logs", tmp / "consumer_logs.log", **logs_env)
        try:
            wait_consuming(amqp_url, "cola_sms", sms)
            wait_consuming(amqp_url, "logs", logs)
            wait_http(f"http://127.0.0.1:{logs_port}/healthz")
            with serve_validator(
                f"sqlite:///{tmp}/token_validator.db",
                consumer_logs_url=f"http://127.0.0.1:{logs_port}",
                consumer_logs_read_key=READ_KEY,
                reconcile_after_seconds=RECONCILE_AFTER,
                reconcile_every_seconds=RECONCILE_EVERY,
            ) as validator:
                yield Suite(amqp_url, urlparse(amqp_url).path.lstrip("/"), validator, gateway)
        finally:
            stop_process(sms)
            stop_process(logs)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with proxy_to("127.0.0.1", 5672) as running:
        yield running


@dataclass
class Sender:
    url: str

    def sms(self, token: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return httpx.post(f"{self.url}/v1/sms", json=SMS, headers=headers, timeout=15)


@contextmanager
def running_sender(amqp_url: str, validator: RunningValidator, *, ready: bool = True) -> Iterator[Sender]:
    settings = Settings(
        amqp_url=amqp_url,
        validator_url=validator.url,
        validator_service_key=SERVICE_KEY,
        publish_timeout=PUBLISH_TIMEOUT,
    )
    with served(create_app(settings)) as url:
        if ready:
            wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=15, what="sender ready")
        yield Sender(url)


@pytest.fixture
def sender(suite: Suite, proxy: Proxy) -> Iterator[Sender]:
    with running_sender(proxy.url(suite.vhost_path), suite.validator) as running:
        yield running


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Limited:
    token: str
    used: Any  # () -> int: the counter this token's quota is spent from


def _limited(validator: RunningValidator, kind: str, name: str) -> Limited:
    tokens = validator.tokens
    if kind == "group":
        tokens.owner("group", name, group_quota=("max_uses", 1))
        token, _ = tokens.make("group", name)
        return Limited(token, lambda: tokens.group_used(name))
    token, token_id = tokens.make("application", name, restriction=kind, limit=1)
    return Limited(token, lambda: tokens.used(token_id))


def _unconfirmed(answer: httpx.Response) -> str:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == "publish_unconfirmed", body
    assert int(answer.headers["Retry-After"]) >= 1
    return str(body["id"])


def _kept(validator: RunningValidator) -> int:
    return reconcile.kept(validator.db.engine)


@pytest.mark.parametrize("kind", ["max_uses", "monthly", "group"])
def test_held_frames_keep_the_use_and_a_retry_delivers_once(
    suite: Suite, proxy: Proxy, sender: Sender, kind: str
) -> None:
    """The review's case: a confirm later than PUBLISH_TIMEOUT. Before, each try was refunded and
    delivered anyway (3 SMS, 0 uses); now the use is kept and the retry republishes the same id."""
    limited = _limited(suite.validator, kind, f"held-{kind}")
    acks_before = _metric("sender_late_confirms_total", result="ack")
    proxy.hold_s = HOLD
    first = _unconfirmed(sender.sms(limited.token, "held-key"))
    assert limited.used() == 1
    second = _unconfirmed(sender.sms(limited.token, "held-key"))
    assert second == first, "a retry with the same key publishes the same message id"
    assert limited.used() == 1
    proxy.hold_s = 0.0

    wait_until(lambda: suite.gateway.calls_for(first) >= 1, timeout=20, what="the SMS delivered")
    wait_until(lambda: _kept(suite.validator) == 0, timeout=20, what="the late confirms settle the use")
    wait_until(
        lambda: _metric("sender_late_confirms_total", result="ack") - acks_before == 2,
        timeout=10,
        what="both copies confirmed late, and counted",
    )

    replay = sender.sms(limited.token, "held-key")
    assert replay.status_code == 202 and replay.json()["id"] == first
    assert replay.headers.get("idempotent-replayed") == "true"
    refused = sender.sms(limited.token)
    assert refused.status_code in (403, 429), refused.text
    assert refused.json()["code"] in ("usage_exhausted", "monthly_quota_exhausted")

    time.sleep(RECONCILE_AFTER + 2 * RECONCILE_EVERY)  # reconciliation has had its turn
    _record(f"held-{kind}", attempts=3, delivered=suite.gateway.calls_for(first), used=limited.used())
    assert suite.gateway.calls_for(first) == 1, "the provider saw the message once in all"
    assert limited.used() == 1, "uses counted = messages delivered"


def test_a_drop_before_the_broker_saw_the_message_is_refunded_by_reconciliation(
    suite: Suite, proxy: Proxy, sender: Sender
) -> None:
    limited = _limited(suite.validator, "max_uses", "dropped")
    proxy.drop_next = True
    answered = time.monotonic()
    message_id = _unconfirmed(sender.sms(limited.token))
    assert limited.used() == 1, "an unknown outcome keeps the use"

    wait_until(lambda: limited.used() == 0, timeout=20, what="reconciliation refunds the use")
    delay = time.monotonic() - answered
    _record("dropped", reconcile_after_s=RECONCILE_AFTER, refund_delay_s=round(delay, 2))
    assert RECONCILE_AFTER - 0.5 <= delay <= RECONCILE_AFTER + RECONCILE_EVERY + 3, delay
    assert suite.gateway.calls_for(message_id) == 0
    wait_until(lambda: httpx.get(f"{sender.url}/readyz").status_code == 200, timeout=15, what="reconnected")
    again = sender.sms(limited.token)
    assert again.status_code == 202, again.text
    wait_until(lambda: suite.gateway.calls_for(again.json()["id"]) == 1, timeout=20, what="the next SMS delivered")
    assert limited.used() == 1


def test_a_cut_after_the_broker_took_the_message_is_settled_as_delivered(
    suite: Suite, proxy: Proxy, sender: Sender
) -> None:
    limited = _limited(suite.validator, "max_uses", "cut")
    lost_before = _metric("sender_late_confirms_total", result="lost")
    proxy.cut_after = 0.3  # the frames reach the broker; its confirm never reaches the sender
    message_id = _unconfirmed(sender.sms(limited.token))
    wait_until(
        lambda: _metric("sender_late_confirms_total", result="lost") - lost_before == 1,
        timeout=10,
        what="the lost connection counted",
    )

    wait_until(lambda: suite.gateway.calls_for(message_id) == 1, timeout=20, what="the SMS delivered")
    wait_until(lambda: _kept(suite.validator) == 0, timeout=20, what="reconciliation settles the use")
    assert limited.used() == 1, "a delivered message is counted once"
    wait_until(lambda: httpx.get(f"{sender.url}/readyz").status_code == 200, timeout=15, what="reconnected")
    assert sender.sms(limited.token).status_code == 403


def _reject_publish(vhost: str, queue: str) -> None:
    """Every publish to `queue` is nacked: a policy, so the queue itself keeps no arguments."""
    rabbit_api(
        "PUT",
        f"/policies/{quote(vhost, safe='')}/reject-{queue}",
        json={
            "pattern": f"^{queue}$",
            "definition": {"max-length": 0, "overflow": "reject-publish"},
            "apply-to": "queues",
        },
    ).raise_for_status()


@pytest.fixture
def rejecting_sms(suite: Suite, proxy: Proxy) -> Iterator[tuple[str, Proxy]]:
    """A vhost of its own whose `cola_sms` nacks every publish, reached through the proxy."""
    with isolated_vhost("cartero-nack") as url:
        vhost = urlparse(url).path.lstrip("/")
        _reject_publish(vhost, "cola_sms")
        yield proxy.url(vhost), proxy


def test_a_nack_refunds_at_once_and_nothing_is_queued(suite: Suite, rejecting_sms: tuple[str, Proxy]) -> None:
    url, _ = rejecting_sms
    limited = _limited(suite.validator, "max_uses", "nacked")
    with running_sender(url, suite.validator) as sender:
        answer = sender.sms(limited.token, "nacked-key")
        assert answer.status_code == 503 and answer.json()["code"] == "broker_unavailable", answer.text
        assert limited.used() == 0 and _kept(suite.validator) == 0
        assert queue_depth(url, "cola_sms") == 0


def test_a_late_nack_refunds_without_waiting_for_reconciliation(suite: Suite, rejecting_sms: tuple[str, Proxy]) -> None:
    url, proxy = rejecting_sms
    limited = _limited(suite.validator, "max_uses", "late-nack")
    nacks_before = _metric("sender_late_confirms_total", result="nack")
    with running_sender(url, suite.validator) as sender:
        proxy.hold_s = HOLD
        answered = time.monotonic()
        _unconfirmed(sender.sms(limited.token))
        proxy.hold_s = 0.0
        wait_until(lambda: limited.used() == 0, timeout=10, what="the late nack refunds the use")
        assert time.monotonic() - answered < RECONCILE_AFTER, "refunded by the nack, not by reconciliation"
        assert _metric("sender_late_confirms_total", result="nack") - nacks_before == 1
        assert queue_depth(url, "cola_sms") == 0


def test_a_confirmed_message_whose_event_is_refused_is_still_accepted(suite: Suite) -> None:
    limited = _limited(suite.validator, "max_uses", "no-event")
    failures_before = _metric("sender_event_publish_failures_total")
    with isolated_vhost("cartero-noevent") as url:
        _reject_publish(urlparse(url).path.lstrip("/"), "logs")
        with running_sender(url, suite.validator) as sender:
            answer = sender.sms(limited.token)
            assert answer.status_code == 202, answer.text
            assert limited.used() == 1, "never refunded for the event's sake"
            assert queue_depth(url, "cola_sms") == 1
            assert _metric("sender_event_publish_failures_total") - failures_before == 1


def test_a_refused_republish_keeps_the_use_for_the_copy_the_broker_may_hold(
    suite: Suite, proxy: Proxy, sender: Sender
) -> None:
    limited = _limited(suite.validator, "max_uses", "republish-refused")
    proxy.hold_s = HOLD
    first = _unconfirmed(sender.sms(limited.token, "republish-key"))
    # The retry reaches a sender whose broker is down: its copy is certainly not taken, but the
    # first one may be, so nothing is refunded.
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with running_sender(dead, suite.validator, ready=False) as cut_off:
        assert _unconfirmed(cut_off.sms(limited.token, "republish-key")) == first
    assert limited.used() == 1
    proxy.hold_s = 0.0
    wait_until(lambda: suite.gateway.calls_for(first) == 1, timeout=20, what="the held copy delivered")
    wait_until(lambda: _kept(suite.validator) == 0, timeout=20, what="its late confirm settles the use")
    assert limited.used() == 1


def test_an_unroutable_message_is_refunded(suite: Suite) -> None:
    limited = _limited(suite.validator, "max_uses", "unroutable")
    with isolated_vhost("cartero-unroutable") as url, running_sender(url, suite.validator) as sender:
        vhost = urlparse(url).path.lstrip("/")
        rabbit_api("DELETE", f"/queues/{quote(vhost, safe='')}/cola_sms").raise_for_status()
        answer = sender.sms(limited.token)
        assert answer.status_code == 503 and answer.json()["code"] == "broker_unavailable", answer.text
        assert limited.used() == 0 and _kept(suite.validator) == 0
