"""The dead letters' API on the real broker: a poison message dead-lettered as the consumers do,
listed with its reason and attempts, replayed (only once the broker confirmed its copy) or
discarded; the key, unknown queues and bad bodies refused with problems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pika
import pytest
from fastapi.testclient import TestClient

from cartero_common.amqp import RetryPolicy, connect
from cartero_common.amqp.topology import declare_topology
from cartero_common.consume import Delivery, PermanentFailure
from cartero_common.consume.settle import settle
from dead_letters.api import create_app
from dead_letters.broker import DeadLetterQueues
from tests.support import drain, queue_depth

pytestmark = pytest.mark.integration

KEY = "dead-letters-key-for-tests-0123456789"
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {KEY}"}


def dead_letter(amqp_url: str, message_id: str, *, telefono: str = "+34600111222") -> None:
    """A message that failed for good, put in cola_sms.dlq exactly as the consume loop puts it."""
    body = json.dumps({"id": message_id, "mensaje": "hola", "telefono": telefono, "fecha": "2026-12-02 10:30:00"})
    properties = pika.BasicProperties(message_id=message_id, delivery_mode=2, headers={"x-cartero-attempt": 3})
    delivery = Delivery("cola_sms", body.encode(), properties, False, 1)
    outcome = PermanentFailure(f"invalid number {telefono}", message=json.loads(body))
    settled = settle(delivery, outcome, policy=RetryPolicy(), report_to=None, now=NOW, timezone="Europe/Madrid")
    connection = connect(amqp_url)
    try:
        channel = connection.channel()
        for publish in settled.publishes:
            channel.basic_publish("", publish.queue, publish.body, publish.properties)
    finally:
        connection.close()


@pytest.fixture
def client(fresh_amqp_url: str) -> Iterator[TestClient]:
    connection = connect(fresh_amqp_url)
    try:
        for queue in ("cola_sms", "correos", "logs"):
            declare_topology(connection.channel(), queue, RetryPolicy(max_attempts=1))
    finally:
        connection.close()
    with TestClient(create_app(DeadLetterQueues(fresh_amqp_url), key=KEY)) as running:
        yield running


@pytest.fixture
def url(client: TestClient, fresh_amqp_url: str) -> str:
    return fresh_amqp_url


def test_a_poison_message_is_listed_with_its_reason_and_attempts_and_stays(client: TestClient, url: str) -> None:
    dead_letter(url, "m-1")
    dead_letter(url, "m-2")
    counts = client.get("/v1/dead-letters", headers=AUTH)
    assert counts.json() == {"cola_sms.dlq": 2, "correos.dlq": 0, "logs.dlq": 0}
    for _ in range(2):  # listing twice shows the same, in the same order: nothing is taken
        listed = client.get("/v1/dead-letters/cola_sms.dlq", headers=AUTH).json()["messages"]
        assert [m["id"] for m in listed] == ["m-1", "m-2"]
    first = listed[0]
    assert first["attempts"] == 3 and first["outcome"] == "fallido" and first["queue"] == "cola_sms"
    assert first["failed_at"] == NOW.isoformat()
    assert first["reason"] == "invalid number +34******222"
    # The preview masks the number and drops the text, as the message log's lists do.
    assert "+34600111222" not in first["preview"] and "hola" not in first["preview"]
    assert "+34******222" in first["preview"]
    assert queue_depth(url, "cola_sms.dlq") == 2


def test_replay_selected_moves_only_those_back_and_says_what_was_not_found(client: TestClient, url: str) -> None:
    for message_id in ("a", "b", "c"):
        dead_letter(url, message_id)
    answer = client.post("/v1/dead-letters/cola_sms.dlq/replay", json={"ids": ["b", "zz"]}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"queue": "cola_sms.dlq", "action": "replay", "count": 1, "ids": ["b"], "not_found": ["zz"]}
    moved = drain(url, "cola_sms")
    assert [p.message_id for p, _ in moved] == ["b"]
    headers = moved[0][0].headers or {}
    assert headers.get("x-cartero-replays") == 1 and "x-cartero-reason" not in headers
    listed = client.get("/v1/dead-letters/cola_sms.dlq", headers=AUTH).json()["messages"]
    assert [m["id"] for m in listed] == ["a", "c"]


def test_replay_all_empties_the_dlq_into_its_queue(client: TestClient, url: str) -> None:
    for message_id in ("a", "b"):
        dead_letter(url, message_id)
    answer = client.post("/v1/dead-letters/cola_sms.dlq/replay", json={"all": True}, headers=AUTH)
    assert answer.json()["ids"] == ["a", "b"]
    assert queue_depth(url, "cola_sms.dlq") == 0 and queue_depth(url, "cola_sms") == 2


def test_a_copy_the_broker_cannot_route_leaves_the_dead_letter_where_it_was(client: TestClient, url: str) -> None:
    dead_letter(url, "a")
    connection = connect(url)
    try:
        channel = connection.channel()
        channel.exchange_declare("cartero.cola_sms", "direct", durable=True)  # the route, bound to nothing
    finally:
        connection.close()
    answer = client.post("/v1/dead-letters/cola_sms.dlq/replay", json={"all": True}, headers=AUTH)
    assert answer.status_code == 503 and answer.json()["code"] == "replay_unconfirmed"
    assert queue_depth(url, "cola_sms.dlq") == 1 and queue_depth(url, "cola_sms") == 0


def test_discard_removes_only_the_ids_given(client: TestClient, url: str) -> None:
    for message_id in ("a", "b"):
        dead_letter(url, message_id)
    answer = client.post("/v1/dead-letters/cola_sms.dlq/discard", json={"ids": ["a", "nope"]}, headers=AUTH)
    assert answer.json() == {
        "queue": "cola_sms.dlq",
        "action": "discard",
        "count": 1,
        "ids": ["a"],
        "not_found": ["nope"],
    }
    assert queue_depth(url, "cola_sms.dlq") == 1 and queue_depth(url, "cola_sms") == 0


def test_wrong_key_unknown_queue_and_bad_bodies_are_problems(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = client.get("/v1/dead-letters", headers=headers)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    missing = client.get("/v1/dead-letters/cola_sms", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_queue"
    bodies: list[dict[str, object]] = [
        {},
        {"ids": []},
        {"ids": ["a"], "all": True},
        {"all": "yes"},
        {"ids": [1]},
        {"ids": ["a"], "x": 1},
    ]
    for body in bodies:
        bad = client.post("/v1/dead-letters/cola_sms.dlq/replay", json=body, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_request", body
    assert client.post("/v1/dead-letters/logs.dlq/discard", json={"all": True}, headers=AUTH).status_code == 422
    assert client.post("/v1/dead-letters/logs.dlq/discard", content=b"{", headers=AUTH).status_code == 422


def test_a_dlq_no_consumer_declared_yet_counts_as_empty(fresh_amqp_url: str) -> None:
    with TestClient(create_app(DeadLetterQueues(fresh_amqp_url), key=KEY)) as client:
        assert client.get("/v1/dead-letters", headers=AUTH).json() == {
            "cola_sms.dlq": 0,
            "correos.dlq": 0,
            "logs.dlq": 0,
        }
        assert client.get("/v1/dead-letters/logs.dlq", headers=AUTH).json() == {"queue": "logs.dlq", "messages": []}
