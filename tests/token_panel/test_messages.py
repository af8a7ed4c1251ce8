"""The message log page over a real consumer_logs read API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from tests.support import free_port
from tests.token_panel.support import MessageLogDb, panel_client, panel_settings, sign_in, unique
from tests.token_validator.support import RunningValidator

MADRID = ZoneInfo("Europe/Madrid")  # the panel's TIMEZONE in these tests


def _sent_and_consumed(log: MessageLogDb, message_id: str, at: datetime, cola: str = "cola_sms") -> None:
    base = {"id": message_id, "mensaje": "hola", "telefono": "+34600111222", "fecha": "2026-03-01 11:00:00"}
    log.add({**base, "cuerpo": "Petición enviada por un sender", "evento": "enviado", "cola": cola}, at)
    log.add({**base, "evento": "reintento", "cola": cola}, at + timedelta(seconds=1))
    log.add(
        {**base, "evento": "consumido", "cola": cola, "fecha_consumo": "2026-03-01 11:00:02"}, at + timedelta(seconds=2)
    )


def test_a_messages_timeline(admin: TestClient, message_log: MessageLogDb) -> None:
    message_id = unique("msg")
    _sent_and_consumed(message_log, message_id, datetime.now(UTC) - timedelta(minutes=5))
    page = admin.get("/messages", params={"id": message_id})
    assert page.status_code == 200
    assert re.findall(r'<h2><span class="badge badge-event">(\w+)</span>', page.text) == [
        "enviado",
        "reintento",
        "consumido",
    ]
    assert "fecha_consumo" in page.text and "+34600111222" in page.text
    missing = admin.get("/messages", params={"id": unique("nothing")})
    assert "The log has no event for this id." in missing.text


def test_search_by_queue_event_and_time(admin: TestClient, message_log: MessageLogDb) -> None:
    queue = unique("cola")
    now = datetime.now(UTC)
    old, new = unique("old"), unique("new")
    _sent_and_consumed(message_log, old, now - timedelta(days=3), cola=queue)
    _sent_and_consumed(message_log, new, now - timedelta(minutes=1), cola=queue)
    recent = admin.get("/messages", params={"cola": queue}).text  # the last 24 hours by default
    assert new in recent and old not in recent
    # A list shows phone numbers masked; the message's own timeline (above) shows them whole.
    assert "+34******222" in recent and "+34600111222" not in recent
    since = (now - timedelta(days=4)).astimezone(MADRID).strftime("%Y-%m-%dT%H:%M")
    everything = admin.get("/messages", params={"cola": queue, "since": since}).text
    assert everything.index(old) < everything.index(new), "oldest first"
    consumed = admin.get("/messages", params={"cola": queue, "since": since, "evento": "consumido"}).text
    assert consumed.count('badge-event">consumido<') == 2 and 'badge-event">enviado<' not in consumed
    until = (now - timedelta(days=2)).astimezone(MADRID).strftime("%Y-%m-%dT%H:%M")
    window = admin.get("/messages", params={"cola": queue, "since": since, "until": until}).text
    assert old in window and new not in window
    assert "No event in the log matches" in admin.get("/messages", params={"cola": unique("none")}).text


def test_long_results_page_forward(admin: TestClient, message_log: MessageLogDb) -> None:
    queue = unique("busy")
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(130):
        message_log.add({"id": f"{queue}-{n:03d}", "evento": "enviado", "cola": queue}, start + timedelta(seconds=n))
    first = admin.get("/messages", params={"cola": queue})
    shown = re.findall(rf">({queue}-\d+)</a>", first.text)
    assert len(shown) == 100 and shown[0].endswith("-000") and shown[-1].endswith("-099")
    later = re.search(r'href="(\?[^"]+)" rel="next"', first.text)
    assert later
    second = admin.get("/messages" + later.group(1).replace("&amp;", "&"))
    rest = re.findall(rf">({queue}-\d+)</a>", second.text)
    assert rest == [f"{queue}-{n:03d}" for n in range(100, 130)]
    assert 'rel="next"' not in second.text


def test_message_log_down_is_a_clear_503(validator: RunningValidator) -> None:
    with panel_client(panel_settings(validator.url, f"http://127.0.0.1:{free_port()}")) as client:
        sign_in(client)
        page = client.get("/messages")
        assert page.status_code == 503 and "The message log is not answering" in page.text
        assert client.get("/tokens").status_code == 200, "the rest of the panel still works"


def test_events_missing_fields_are_listed_and_shown(admin: TestClient, message_log: MessageLogDb) -> None:
    # consumer_logs keeps whatever came off `logs`: JSON without `cola` or `evento`, or no JSON at all.
    at = datetime.now(UTC) - timedelta(minutes=2)
    readable, unreadable = unique("nocola"), unique("raw")
    message_log.add({"id": readable, "telefono": "+34600999888"}, at)
    message_log.add_raw(b"not json \x00 at all", message_id=unreadable, stored_at=at + timedelta(seconds=1))
    since = (at - timedelta(minutes=1)).astimezone(MADRID).strftime("%Y-%m-%dT%H:%M")
    listed = admin.get("/messages", params={"since": since})
    assert listed.status_code == 200, listed.text[:500]
    assert readable in listed.text and unreadable in listed.text and "not json" in listed.text
    for message_id in (readable, unreadable):
        timeline = admin.get("/messages", params={"id": message_id})
        assert timeline.status_code == 200, timeline.text[:500]
        assert "(no event name)" in timeline.text
