"""The sender's bearer tokens against a real validator and broker: docs/design.md §4's codes and headers,
fail closed, refunds, and nothing spent or published for a request that is refused."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from sender.app import create_app
from tests.sender.conftest import sender_settings
from tests.support import drain, free_port, queue_depth
from tests.token_validator.support import RunningValidator

SMS = {"mensaje": "hola", "telefono": "600111222"}
EMAIL = {"destinatario": "ana@example.com", "asunto": "A", "cuerpo": "B"}


@pytest.fixture
def anonymous(broker_url: str, validator: RunningValidator) -> Iterator[TestClient]:
    with TestClient(create_app(sender_settings(broker_url, validator))) as test_client:
        yield test_client


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def _nothing_published(broker_url: str) -> None:
    assert [queue_depth(broker_url, q) for q in ("cola_sms", "correos", "logs")] == [0, 0, 0]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_missing_token(anonymous: TestClient, broker_url: str) -> None:
    for path, body in (("/v1/sms", SMS), ("/v1/email", EMAIL)):
        response = anonymous.post(path, json=body)
        _problem(response, 401, "missing_token")
        assert response.headers["www-authenticate"].startswith("Bearer")
    _nothing_published(broker_url)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic YWRtaW46YWRtaW4=", "missing_token"),
        ("Bearer", "missing_token"),
        ("Bearer ", "missing_token"),
        ("Bearer " + "a" * 300, "invalid_token"),
        ("Bearer " + "app_" + "x" * 100_000, "invalid_token"),
        ("Bearer app_' OR 1=1 --", "invalid_token"),
        ("Bearer app_'%20OR%201=1;DROP%20TABLE%20tokens;--", "invalid_token"),
        ("Bearer app_\x01\x02\x03xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "invalid_token"),
        ("Bearer xyz_" + "A" * 43, "invalid_token"),
        ("Bearer grp_" + "A" * 43, "invalid_token"),
        ("Token app_" + "A" * 43, "missing_token"),
    ],
)
def test_garbled_authorization_headers(
    anonymous: TestClient, broker_url: str, validator: RunningValidator, header: str, code: str
) -> None:
    _, limited_id = validator.tokens.make("application", "victim", restriction="max_uses", limit=5)
    response = anonymous.post("/v1/sms", json=SMS, headers={"Authorization": header})
    body = _problem(response, 401, code)
    assert "x" * 50 not in response.text and "DROP" not in json.dumps(body)
    _nothing_published(broker_url)
    assert validator.tokens.used(limited_id) == 0


def test_refusals_map_to_the_designed_statuses(
    anonymous: TestClient, broker_url: str, validator: RunningValidator
) -> None:
    tokens = validator.tokens
    revoked, revoked_id = tokens.make("application", "revoked-app")
    tokens.revoke(revoked_id)
    expired, _ = tokens.make("application", "old-app", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    tokens.owner("user", "gone-user")
    disabled, _ = tokens.make("user", "gone-user")
    tokens.disable("user", "gone-user")
    sms_only, _ = tokens.make("application", "sms-app", actions="sms.send")

    _problem(anonymous.post("/v1/sms", json=SMS, headers=_bearer(revoked)), 401, "token_revoked")
    _problem(anonymous.post("/v1/sms", json=SMS, headers=_bearer(expired)), 401, "token_expired")
    _problem(anonymous.post("/v1/sms", json=SMS, headers=_bearer(disabled)), 403, "subject_disabled")
    _problem(anonymous.post("/v1/email", json=EMAIL, headers=_bearer(sms_only)), 403, "action_forbidden")
    _nothing_published(broker_url)
    assert anonymous.post("/v1/sms", json=SMS, headers=_bearer(sms_only)).status_code == 202


def test_max_uses_headers_then_usage_exhausted(anonymous: TestClient, validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "two-uses", restriction="max_uses", limit=2)
    first = anonymous.post("/v1/sms", json=SMS, headers=_bearer(token))
    second = anonymous.post("/v1/sms", json=SMS, headers=_bearer(token))
    assert (first.status_code, second.status_code) == (202, 202)
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert second.headers["ratelimit-remaining"] == "0"
    assert "ratelimit-reset" not in first.headers  # a lifetime limit never renews
    third = anonymous.post("/v1/sms", json=SMS, headers=_bearer(token))
    _problem(third, 403, "usage_exhausted")
    assert validator.tokens.used(token_id) == 2


def test_monthly_quota_is_429_with_retry_after(anonymous: TestClient, validator: RunningValidator) -> None:
    token, _ = validator.tokens.make("application", "monthly-one", restriction="monthly", limit=1)
    ok = anonymous.post("/v1/sms", json=SMS, headers=_bearer(token))
    assert ok.status_code == 202
    refused = anonymous.post("/v1/sms", json=SMS, headers=_bearer(token))
    _problem(refused, 429, "monthly_quota_exhausted")
    now = datetime.now(ZoneInfo("Europe/Madrid"))
    month_start = (now.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    expected = (month_start.astimezone(UTC) - now.astimezone(UTC)).total_seconds()
    assert abs(int(refused.headers["retry-after"]) - expected) <= 5
    assert abs(int(ok.headers["ratelimit-reset"]) - expected) <= 5
    assert refused.headers["ratelimit-remaining"] == "0"


def test_over_the_rate_limit_is_429_rate_limited_with_retry_after_and_nothing_spent(
    anonymous: TestClient, broker_url: str, validator: RunningValidator
) -> None:
    token, token_id = validator.tokens.make("application", "two-a-minute", restriction="max_uses", limit=100)
    validator.tokens.rate(2, "minute", token_id=token_id)
    now = datetime.now(UTC)
    if now.second >= 50:  # all three requests in one minute's window
        time.sleep(61 - now.second - now.microsecond / 1e6)
    accepted = [anonymous.post("/v1/sms", json=SMS, headers=_bearer(token)) for _ in range(2)]
    assert [r.status_code for r in accepted] == [202, 202]
    for queue in ("cola_sms", "logs"):
        drain(broker_url, queue)
    refused = anonymous.post("/v1/sms", json=SMS, headers=_bearer(token))
    later = datetime.now(UTC)
    body = _problem(refused, 429, "rate_limited")
    assert "Retry-After" in body["detail"]
    to_the_minute = 60 - later.second - later.microsecond / 1e6
    assert abs(int(refused.headers["retry-after"]) - to_the_minute) <= 2
    assert (refused.headers["ratelimit-limit"], refused.headers["ratelimit-remaining"]) == ("2", "0")
    assert refused.headers["ratelimit-reset"] == refused.headers["retry-after"]
    # The 202s tell the limit with fewest uses left: the rate (2 a minute), not the quota (100).
    assert [(r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) for r in accepted] == [
        ("2", "1"),
        ("2", "0"),
    ]
    assert 1 <= int(accepted[0].headers["ratelimit-reset"]) <= 60
    assert validator.tokens.used(token_id) == 2  # the refusal spent no quota use
    _nothing_published(broker_url)


def test_bad_input_spends_nothing(anonymous: TestClient, broker_url: str, validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "careful", restriction="max_uses", limit=3)
    headers = _bearer(token)
    assert anonymous.post("/v1/sms", json={"mensaje": "hola"}, headers=headers).status_code == 422
    assert anonymous.post("/v1/sms", content=b"x", headers={**headers, "Content-Type": "text/plain"}).status_code == 415
    assert anonymous.post("/v1/sms", json={**SMS, "mensaje": "x" * 70_000}, headers=headers).status_code == 413
    bad_key = anonymous.post("/v1/sms", json=SMS, headers={**headers, "Idempotency-Key": "x" * 300})
    _problem(bad_key, 422, "invalid_request")
    assert validator.tokens.used(token_id) == 0
    _nothing_published(broker_url)


def test_validator_down_fails_closed(broker_url: str, validator: RunningValidator, token: str) -> None:
    settings = sender_settings(broker_url, validator).model_copy(
        update={"validator_url": f"http://127.0.0.1:{free_port()}"}
    )
    with TestClient(create_app(settings), headers=_bearer(token)) as client:
        _problem(client.post("/v1/sms", json=SMS), 503, "validator_unavailable")
        assert client.get("/readyz").json()["checks"]["validator"] == "unreachable"
    _nothing_published(broker_url)


def test_wrong_service_key_fails_closed(broker_url: str, validator: RunningValidator, token: str) -> None:
    settings = sender_settings(broker_url, validator).model_copy(update={"validator_service_key": "not-the-key"})
    with TestClient(create_app(settings), headers=_bearer(token)) as client:
        _problem(client.post("/v1/sms", json=SMS), 503, "validator_unavailable")
    _nothing_published(broker_url)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a validator stuck in a slow query."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(2)
    for connection in accepted:
        connection.close()
    listener.close()


def test_slow_validator_is_503_after_the_timeout(
    broker_url: str, validator: RunningValidator, token: str, silent_port: int
) -> None:
    settings = sender_settings(broker_url, validator).model_copy(
        update={"validator_url": f"http://127.0.0.1:{silent_port}", "validator_timeout": 1.0}
    )
    with TestClient(create_app(settings), headers=_bearer(token)) as client:
        started = time.monotonic()
        _problem(client.post("/v1/sms", json=SMS), 503, "validator_unavailable")
        assert 0.9 <= time.monotonic() - started < 2.0
    _nothing_published(broker_url)


def test_broker_down_refunds_the_use(validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "refunded", restriction="monthly", limit=10)
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with TestClient(create_app(sender_settings(dead, validator)), headers=_bearer(token)) as client:
        _problem(client.post("/v1/sms", json=SMS), 503, "broker_unavailable")
        _problem(client.post("/v1/email", json=EMAIL), 503, "broker_unavailable")
    assert validator.tokens.used(token_id) == 0


def test_the_log_event_names_the_token_but_never_holds_it(client: TestClient, broker_url: str, token: str) -> None:
    response = client.post("/v1/sms", json=SMS)
    assert response.status_code == 202
    [(_, raw_event)] = drain(broker_url, "logs")
    [(_, raw_message)] = drain(broker_url, "cola_sms")
    event = json.loads(raw_event)
    assert event["token_kind"] == "application" and isinstance(event["token_id"], int)
    assert event["token_prefix"] == token[:8]
    assert token not in raw_event.decode() and token[8:20] not in raw_event.decode()
    assert token[8:20] not in raw_message.decode()
    assert set(json.loads(raw_message)) == {"id", "mensaje", "telefono", "fecha"}
