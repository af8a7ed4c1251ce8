"""The panel's dead-letter pages over a real dead_letters service, a real broker and a real
validator: a poison message is shown with its reason, replayed or discarded only after a
confirmation step, each action in the audit trail with the admin's name; counts on the overview,
"unavailable" when the service is down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import pika
import pytest
from fastapi.testclient import TestClient

from cartero_common.amqp import RetryPolicy, connect
from cartero_common.amqp.topology import declare_topology
from dead_letters.api import create_app as create_dead_letters_app
from dead_letters.broker import DeadLetterQueues
from tests.dead_letters.test_api import KEY, dead_letter
from tests.support import free_port, queue_depth, rabbit_api, served
from tests.token_panel.support import ADMIN, MessageLogDb, csrf_of, panel_client, panel_settings, sign_in
from tests.token_validator.support import ADMIN_KEY, RunningValidator
from token_panel.routes.dead_letters import AUDIT_ID_CHARS, AUDIT_MAX_IDS

pytestmark = pytest.mark.integration


def _declared(amqp_url: str) -> str:
    connection = connect(amqp_url)
    try:
        for queue in ("cola_sms", "correos", "logs"):
            declare_topology(connection.channel(), queue, RetryPolicy(max_attempts=1))
    finally:
        connection.close()
    return amqp_url


@pytest.fixture
def broker(fresh_amqp_url: str) -> str:
    return _declared(fresh_amqp_url)


@pytest.fixture
def full_after_one(fresh_amqp_url: str) -> str:
    """A broker whose cola_sms takes one message and nacks every publish after it (a policy set
    before the queue is declared, so it holds from the first publish)."""
    vhost = urlparse(fresh_amqp_url).path.lstrip("/")
    rabbit_api(
        "PUT",
        f"/policies/{quote(vhost, safe='')}/cola-sms-holds-one",
        json={
            "pattern": "^cola_sms$",
            "definition": {"max-length": 1, "overflow": "reject-publish"},
            "apply-to": "queues",
        },
    ).raise_for_status()
    return _declared(fresh_amqp_url)


@contextmanager
def _panel(broker: str, validator: RunningValidator, message_log: MessageLogDb) -> Iterator[TestClient]:
    with served(create_dead_letters_app(DeadLetterQueues(broker), key=KEY)) as dead_url:
        settings = panel_settings(validator.url, message_log.url, dead_letters_url=dead_url, dead_letters_key=KEY)
        with panel_client(settings) as client:
            assert sign_in(client).status_code == 303
            yield client


@pytest.fixture
def panel(broker: str, validator: RunningValidator, message_log: MessageLogDb) -> Iterator[TestClient]:
    with _panel(broker, validator, message_log) as client:
        yield client


def _audited(validator: RunningValidator, **params: Any) -> list[dict[str, Any]]:
    """The validator's audit rows, newest first, as its admin API returns them."""
    found = httpx.get(
        f"{validator.url}/v1/admin/audit",
        params=params,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


def _last_audit_id(validator: RunningValidator) -> int:
    """The newest row's id: the validator serves the whole session, so a test reads only later rows."""
    newest = _audited(validator, per_page=1)
    return int(newest[0]["id"]) if newest else 0


def _only_row(validator: RunningValidator, action: str, *, after: int) -> dict[str, Any]:
    rows = [row for row in _audited(validator, action=action) if row["id"] > after]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["actor"], row["action"]) == (ADMIN, action)
    assert (row["target_type"], row["target_id"]) == ("dead_letter_queue", "cola_sms.dlq")
    details: dict[str, Any] = row["details"]
    return details


def _confirm_and_post(panel: TestClient, confirm: str) -> str:
    page = panel.get(confirm)
    assert page.status_code == 200, page.text
    action = "replay" if "action=replay" in confirm else "discard"
    queue = confirm.split("/")[2]
    ids = [part.split("=", 1)[1] for part in confirm.split("?", 1)[1].split("&") if part.startswith("id=")]
    data: dict[str, object] = {"csrf": csrf_of(page.text), "id": ids}
    if "all=true" in confirm:
        data["all"] = "1"
    done = panel.post(f"/dead-letters/{queue}/{action}", data=data)
    assert done.status_code == 303, done.text
    shown: str = panel.get(done.headers["location"]).text
    return shown


def test_a_poison_message_is_shown_replayed_and_discarded_and_audited(
    panel: TestClient, broker: str, validator: RunningValidator
) -> None:
    before = _last_audit_id(validator)
    dead_letter(broker, "poison-1", telefono="+34600999888")
    dead_letter(broker, "poison-2")
    home = panel.get("/").text
    assert "cola_sms.dlq</a>: 2" in home
    page = panel.get("/dead-letters/cola_sms.dlq").text
    assert "poison-1" in page and "invalid number" in page and "+34600999888" not in page

    # The confirmation page alone changes nothing.
    assert panel.get("/dead-letters/cola_sms.dlq/confirm?action=replay&id=poison-1").status_code == 200
    assert queue_depth(broker, "cola_sms.dlq") == 2
    shown = _confirm_and_post(panel, "/dead-letters/cola_sms.dlq/confirm?action=replay&id=poison-1")
    assert "1 message(s) replayed." in shown
    assert queue_depth(broker, "cola_sms") == 1 and queue_depth(broker, "cola_sms.dlq") == 1
    shown = _confirm_and_post(panel, "/dead-letters/cola_sms.dlq/confirm?action=discard&id=poison-2")
    assert "1 message(s) discarded." in shown and "This dead-letter queue is empty." in shown
    assert queue_depth(broker, "cola_sms.dlq") == 0

    replayed = _only_row(validator, "dead_letters.replay", after=before)
    assert replayed["ids"] == ["poison-1"] and replayed["count"] == 1 and replayed["not_found"] == []
    assert not replayed["all"] and not replayed["ids_truncated"] and not replayed["unconfirmed"]
    discarded = _only_row(validator, "dead_letters.discard", after=before)
    assert discarded["ids"] == ["poison-2"] and discarded["count"] == 1 and not discarded["unconfirmed"]


def test_replay_all_of_more_than_the_audit_holds_is_audited_with_the_count(
    panel: TestClient, broker: str, validator: RunningValidator
) -> None:
    long_id = "x" * 250  # an AMQP message id may be up to 255 characters
    ids = [long_id] + [f"bulk-{n:04d}" for n in range(AUDIT_MAX_IDS)]
    connection = connect(broker)
    try:
        channel = connection.channel()
        for message_id in ids:
            properties = pika.BasicProperties(message_id=message_id, delivery_mode=2)
            channel.basic_publish("", "cola_sms.dlq", b'{"id": "bulk"}', properties)
    finally:
        connection.close()
    assert queue_depth(broker, "cola_sms.dlq") == len(ids)
    before = _last_audit_id(validator)

    shown = _confirm_and_post(panel, "/dead-letters/cola_sms.dlq/confirm?action=replay&all=true")
    assert f"{len(ids)} message(s) replayed." in shown
    assert queue_depth(broker, "cola_sms.dlq") == 0 and queue_depth(broker, "cola_sms") == len(ids)
    record = _only_row(validator, "dead_letters.replay", after=before)
    assert record["count"] == len(ids) and record["all"] and record["ids_truncated"]
    assert record["ids"] == [long_id[:AUDIT_ID_CHARS]] + ids[1:AUDIT_MAX_IDS]


def test_a_replay_the_broker_stops_confirming_is_audited_with_what_moved(
    full_after_one: str, validator: RunningValidator, message_log: MessageLogDb
) -> None:
    for message_id in ("first", "second", "third"):
        dead_letter(full_after_one, message_id)
    before = _last_audit_id(validator)
    with _panel(full_after_one, validator, message_log) as panel:
        confirm = "/dead-letters/cola_sms.dlq/confirm?action=replay&id=first&id=second&id=third"
        shown = _confirm_and_post(panel, confirm)
    assert "Stopped part-way" in shown and "1 message(s) replayed (first)." in shown
    assert "Not replayed: second, third." in shown
    assert queue_depth(full_after_one, "cola_sms") == 1 and queue_depth(full_after_one, "cola_sms.dlq") == 2
    record = _only_row(validator, "dead_letters.replay", after=before)
    assert record["ids"] == ["first"] and record["count"] == 1 and record["unconfirmed"]
    assert not record["all"] and not record["ids_truncated"]


def test_a_form_without_the_csrf_token_moves_nothing(panel: TestClient, broker: str) -> None:
    dead_letter(broker, "kept")
    refused = panel.post("/dead-letters/cola_sms.dlq/discard", data={"id": "kept"})
    assert refused.status_code == 403
    assert queue_depth(broker, "cola_sms.dlq") == 1


def test_the_overview_says_unavailable_when_the_service_is_down(
    validator: RunningValidator, message_log: MessageLogDb
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = panel_settings(validator.url, message_log.url, dead_letters_url=down, dead_letters_key=KEY)
    with panel_client(settings) as client:
        assert sign_in(client).status_code == 303
        home = client.get("/")
        assert home.status_code == 200 and "cola_sms.dlq</a>: unavailable" in home.text
        listing = client.get("/dead-letters")
        assert listing.status_code == 200 and "unavailable" in listing.text
