"""`GET /v1/messages/{id}`: the status a caller sees, from the real message log. The real broker,
consumer_sms (to a real HTTP gateway) and consumer_logs as processes, the real validator, and the
sender served over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from sender.app import create_app
from sender.config import Settings
from tests.consumer_logs.support import ServedLog, serve_consumer_logs
from tests.consumers import Gateway, start_consumer, wait_consuming
from tests.support import ROOT, free_port, isolated_vhost, python_env, served, stop_process, wait_until
from tests.token_validator.support import SERVICE_KEY, RunningValidator, serve_validator

pytestmark = pytest.mark.integration

STATUS_KEY = "status-key-for-tests-0123456789"
SMS = {"mensaje": "hola", "telefono": "600111222"}


@dataclass
class Suite:
    validator: RunningValidator
    gateway: Gateway
    logs: ServedLog
    sender: str


def _sender(amqp_url: str, validator: RunningValidator, logs_url: str, **extra: Any) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        validator_url=validator.url,
        validator_service_key=SERVICE_KEY,
        consumer_logs_url=logs_url,
        consumer_logs_status_key=STATUS_KEY,
        **extra,
    )


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    tmp = tmp_path_factory.mktemp("message-status")
    with isolated_vhost("cartero-status") as amqp_url, Gateway() as gateway:
        sms_env = {
            "AMQP_URL": amqp_url,
            "DATABASE_URL": f"sqlite:///{tmp}/consumer_sms.db",
            "SMS_PROVIDER": "http",
            "SMS_GATEWAY_URL": gateway.url,
            "CONSUMER_SMS_METRICS_PORT": "0",
            "CONSUMER_RETRY_DELAYS": "300ms",
        }
        subprocess.run(
            [sys.executable, "-m", "consumer_sms", "migrate"], cwd=ROOT, env=python_env(**sms_env), check=True
        )
        sms = start_consumer("consumer_sms", tmp / "consumer_sms.log", **sms_env)
        try:
            wait_consuming(amqp_url, "cola_sms", sms)
            with (
                serve_consumer_logs(amqp_url, tmp, CONSUMER_LOGS_STATUS_KEY=STATUS_KEY) as logs,
                serve_validator(f"sqlite:///{tmp}/token_validator.db") as validator,
                served(create_app(_sender(amqp_url, validator, logs.url))) as sender,
            ):
                wait_until(lambda: httpx.get(f"{sender}/readyz").status_code == 200, timeout=15, what="sender")
                yield Suite(validator, gateway, logs, sender)
        finally:
            stop_process(sms)


def _token(suite: Suite, owner: str, kind: str = "application") -> str:
    token, _ = suite.validator.tokens.make(kind, owner)  # type: ignore[arg-type]
    return token


def _post(suite: Suite, token: str) -> str:
    answer = httpx.post(f"{suite.sender}/v1/sms", json=SMS, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _status(base: str, message_id: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{base}/v1/messages/{message_id}", headers=headers, timeout=10)


def _until(suite: Suite, message_id: str, token: str, status: str, timeout: float) -> dict[str, Any]:
    seen: list[str] = []

    def reached() -> dict[str, Any] | None:
        answer = _status(suite.sender, message_id, token)
        if answer.status_code == 200:
            body: dict[str, Any] = answer.json()
            seen.append(body["status"])
            return body if body["status"] == status else None
        return None

    wait_until(reached, timeout=timeout, interval=0.05, what=f"status {status} (seen {seen})")
    return reached() or {}


def test_a_message_is_queued_then_sent_within_two_seconds(suite: Suite) -> None:
    token = _token(suite, "shop")
    message_id = _post(suite, token)
    started = time.monotonic()
    first = _status(suite.sender, message_id, token)
    assert first.status_code == 200, first.text
    assert first.json()["status"] in ("queued", "sent") and first.json()["id"] == message_id
    sent = _until(suite, message_id, token, "sent", timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert sent["queue"] == "cola_sms" and sent["provider"]
    assert [entry["status"] for entry in sent["timeline"]] == ["queued", "sent"]


def test_a_token_of_the_same_owner_sees_it(suite: Suite) -> None:
    message_id = _post(suite, _token(suite, "twins"))
    assert _status(suite.sender, message_id, _token(suite, "twins")).status_code == 200


def test_transient_failures_show_retrying_with_attempt_and_next_try_then_sent(suite: Suite) -> None:
    token = _token(suite, "flaky")
    suite.gateway.statuses[:] = [503, 503, 503]
    message_id = _post(suite, token)
    retrying = _until(suite, message_id, token, "retrying", timeout=5)
    assert retrying["attempt"] >= 1 and retrying["next_try_at"] and "503" in retrying["reason"]
    sent = _until(suite, message_id, token, "sent", timeout=10)
    statuses = [entry["status"] for entry in sent["timeline"]]
    assert statuses == ["queued", "retrying", "retrying", "retrying", "sent"]
    assert [e["attempt"] for e in sent["timeline"] if e["status"] == "retrying"] == [1, 2, 3]


def test_a_permanent_failure_shows_failed_with_its_reason_dead_lettered(suite: Suite) -> None:
    token = _token(suite, "broken")
    suite.gateway.statuses[:] = [400]
    message_id = _post(suite, token)
    failed = _until(suite, message_id, token, "failed", timeout=5)
    assert failed["dead_lettered"] is True and failed["dlq"] == "cola_sms.dlq"
    assert "400" in failed["reason"]


def test_another_owners_id_is_answered_as_an_unknown_id(suite: Suite) -> None:
    mine = _post(suite, _token(suite, "owner-a"))
    _until(suite, mine, _token(suite, "owner-a"), "sent", timeout=5)
    for stranger in (_token(suite, "owner-b"), _token(suite, "owner-a", kind="user")):
        theirs = _status(suite.sender, mine, stranger)
        unknown = _status(suite.sender, "0" * 32, stranger)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.headers["content-type"] == unknown.headers["content-type"] == "application/problem+json"
        strip = {"instance"}
        assert {k: v for k, v in theirs.json().items() if k not in strip} == {
            k: v for k, v in unknown.json().items() if k not in strip
        }
        assert theirs.json()["code"] == "message_not_found"


def test_no_token_or_a_bad_one_is_401(suite: Suite) -> None:
    message_id = _post(suite, _token(suite, "auth"))
    revoked, revoked_id = suite.validator.tokens.make("application", "auth")
    suite.validator.tokens.revoke(revoked_id)
    before = _metric("sender_status_requests_total", outcome="unauthorized")
    for token, code in ((None, "missing_token"), ("app_" + "z" * 43, "invalid_token"), (revoked, "token_revoked")):
        answer = _status(suite.sender, message_id, token)
        assert answer.status_code == 401 and answer.json()["code"] == code
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert _metric("sender_status_requests_total", outcome="unauthorized") == before + 3


def test_the_status_route_needs_the_status_key_not_the_read_key(suite: Suite) -> None:
    from tests.consumer_logs.support import READ_AUTH

    url = f"{suite.logs.url}/v1/status/x?owner_ref=application:1"
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, headers=READ_AUTH, timeout=5).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {STATUS_KEY}"}, timeout=5).status_code == 404


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_message_log_that_is_down_or_slow_is_a_503_problem(suite: Suite) -> None:
    token = _token(suite, "down")
    before = _metric("sender_status_requests_total", outcome="unavailable")
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = _sender("amqp://guest:guest@127.0.0.1:5672/%2F", suite.validator, nowhere, status_timeout=0.5)
    # A listening socket nobody accepts from: the kernel completes the connection, no answer comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        for logs_url in (nowhere, f"http://127.0.0.1:{silent.getsockname()[1]}"):
            settings = settings.model_copy(update={"consumer_logs_url": logs_url})
            with served(create_app(settings)) as sender:
                started = time.monotonic()
                answer = _status(sender, "0" * 32, token)
                assert time.monotonic() - started < 2.0
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "status_unavailable"
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["Retry-After"]) >= 1
    assert _metric("sender_status_requests_total", outcome="unavailable") == before + 2
