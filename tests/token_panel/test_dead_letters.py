"""The panel's dead-letter pages over a real dead_letters service, a real broker and a real
validator: a poison message is shown with its reason, replayed or discarded only after a
confirmation step, each action in the audit trail with the admin's name; counts on the overview,
"unavailable" when the service is down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cartero_common.amqp import RetryPolicy, connect
from cartero_common.amqp.topology import declare_topology
from dead_letters.api import create_app as create_dead_letters_app
from dead_letters.broker import DeadLetterQueues
from tests.dead_letters.test_api import KEY, dead_letter
from tests.support import free_port, queue_depth, served
from tests.token_panel.support import ADMIN, MessageLogDb, csrf_of, panel_client, panel_settings, sign_in
from tests.token_validator.support import RunningValidator

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(fresh_amqp_url: str) -> str:
    connection = connect(fresh_amqp_url)
    try:
        for queue in ("cola_sms", "correos", "logs"):
            declare_topology(connection.channel(), queue, RetryPolicy(max_attempts=1))
    finally:
        connection.close()
    return fresh_amqp_url


@pytest.fixture
def panel(broker: str, validator: RunningValidator, message_log: MessageLogDb) -> Iterator[TestClient]:
    with served(create_dead_letters_app(DeadLetterQueues(broker), key=KEY)) as dead_url:
        settings = panel_settings(validator.url, message_log.url, dead_letters_url=dead_url, dead_letters_key=KEY)
        with panel_client(settings) as client:
            assert sign_in(client).status_code == 303
            yield client


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


def test_a_poison_message_is_shown_replayed_and_discarded_and_audited(panel: TestClient, broker: str) -> None:
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

    audit = panel.get("/audit", params={"action": "dead_letters.replay"}).text
    assert "dead_letters.replay" in audit and ADMIN in audit and "poison-1" in audit
    audit = panel.get("/audit", params={"action": "dead_letters.discard"}).text
    assert "dead_letters.discard" in audit and "poison-2" in audit


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
