"""The panel's pure parts: form reading, charts, cookies, log paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cartero_common.clock import FixedClock
from token_panel.charts import bar_chart, nice_ceiling
from token_panel.forms import Invalid, TokenForm, actions, local_instant, restriction
from token_panel.message_log import page_of, summary
from token_panel.routes.auth import safe_next
from token_panel.sessions import CookieSigner, Flash, PanelSession

MADRID = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


class Form(dict[str, object]):
    def getlist(self, key: str) -> list[object]:
        value = self.get(key)
        return value if isinstance(value, list) else []


def test_restriction_needs_a_limit_only_when_limited() -> None:
    assert restriction("unlimited", "") == {"type": "unlimited"}
    assert restriction("unlimited", "junk") == {"type": "unlimited"}
    assert restriction("monthly", "3") == {"type": "monthly", "limit": 3}
    for kind, limit in (("monthly", ""), ("max_uses", "0"), ("max_uses", "-1"), ("monthly", "2.5"), ("bogus", "1")):
        with pytest.raises(Invalid):
            restriction(kind, limit)


def test_local_instant_is_read_in_the_panel_zone_across_dst() -> None:
    # 2026-03-29 is the spring-forward day in Madrid: 01:30 is +01:00 and 03:30 is +02:00.
    assert local_instant("2026-03-29T01:30", MADRID, "x") == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert local_instant("2026-03-29T03:30", MADRID, "x") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert local_instant("", MADRID, "x") is None
    with pytest.raises(Invalid) as caught:
        local_instant("yesterday", MADRID, "since")
    assert "since" in caught.value.errors


def test_actions_all_wins_and_none_is_an_error() -> None:
    assert actions(["*", "sms.send"]) == ["*"]
    assert actions(["email.send", "sms.send", "fax.send"]) == ["sms.send", "email.send"]
    with pytest.raises(Invalid):
        actions([])


def test_token_form_lists_every_wrong_field_at_once() -> None:
    form = TokenForm.read(Form(kind="user", owner="ana", actions=[], restriction="monthly", expires="2020-01-01T00:00"))
    with pytest.raises(Invalid) as caught:
        form.body(1, MADRID, NOW)
    assert set(caught.value.errors) == {"actions", "limit", "expires"}
    good = TokenForm.read(Form(kind="user", owner="ana", actions=["sms.send"], restriction="monthly", limit="3"))
    assert good.body(7, MADRID, NOW) == {
        "kind": "user",
        "owner_id": 7,
        "actions": ["sms.send"],
        "restriction": {"type": "monthly", "limit": 3},
        "expires_at": None,
        "name": None,
    }


def test_nice_ceiling_and_bars() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 499)] == [1, 1, 5, 10, 10, 20, 500]
    chart = bar_chart([("01", 0), ("02", 3), ("03", 10)], label_every=2)
    assert [b.value for b in chart.bars] == [0, 3, 10] and chart.total == 13
    assert chart.bars[0].height == 0 and chart.bars[2].y == chart.baseline - chart.bars[2].height
    assert chart.bars[2].height > chart.bars[1].height > 0
    assert [b.show_label for b in chart.bars] == [True, False, True]
    assert [t.value for t in chart.ticks] == [0, 5, 10]
    assert bar_chart([]).bars == []


def test_session_cookie_is_signed_and_ends_with_its_session() -> None:
    clock = FixedClock(NOW)
    signer = CookieSigner("s" * 40, clock)
    session = PanelSession.signed_in("validator-session-id", "ana", NOW + timedelta(seconds=600))
    cookie = signer.dump_session(session)
    # The admin's name is not in the cookie: only the validator says whose a session is.
    assert signer.load_session(cookie) == PanelSession(csrf=session.csrf, expires=session.expires, sid=session.sid)
    assert signer.load_session(cookie[:-2] + "xx") is None
    assert CookieSigner("t" * 40, clock).load_session(cookie) is None
    clock.set(NOW + timedelta(seconds=601))
    assert signer.load_session(cookie) is None
    assert signer.load_flash(signer.dump_flash(Flash("ok", "<b>hi</b>"))) == Flash("ok", "<b>hi</b>")


def test_signing_in_changes_the_csrf_token() -> None:
    anonymous = PanelSession.anonymous(NOW)
    signed = PanelSession.signed_in("validator-session-id", "ana", NOW + timedelta(minutes=5))
    assert anonymous.sid is None and signed.csrf != anonymous.csrf
    assert signed.csrf_matches(signed.csrf) and not signed.csrf_matches(anonymous.csrf)
    assert not signed.csrf_matches(None)
    assert signed.seconds_left(NOW) == 300 and signed.seconds_left(NOW + timedelta(minutes=6)) == 0


def test_safe_next_never_leaves_the_site() -> None:
    assert safe_next("/tokens?kind=user") == "/tokens?kind=user"
    for bad in (None, "", "https://evil.example/", "//evil.example", "/\\evil.example", "tokens"):
        assert safe_next(bad) == "/"


def _event(seq: int, second: int) -> dict[str, object]:
    return {"seq": seq, "stored_at": f"2026-03-01T10:00:{second:02d}+00:00", "evento": "enviado", "id": f"m{seq}"}


def test_log_pages_continue_after_what_was_shown() -> None:
    fetched = [_event(i, i) for i in range(1, 6)]
    first = page_of(fetched, fetched_limit=5, per_page=2, after=None, until=None)
    assert [e["seq"] for e in first.events] == [1, 2] and first.next_after == 2
    assert first.next_since == datetime(2026, 3, 1, 10, 0, 2, tzinfo=UTC)
    # The next fetch starts at the last shown instant, so it brings that event again: skipped.
    second = page_of(fetched[1:], fetched_limit=5, per_page=2, after=2, until=None)
    assert [e["seq"] for e in second.events] == [3, 4]
    until = datetime(2026, 3, 1, 10, 0, 3, tzinfo=UTC)
    cut = page_of(fetched, fetched_limit=5, per_page=10, after=None, until=until)
    assert [e["seq"] for e in cut.events] == [1, 2, 3] and cut.next_since is None
    short = page_of(fetched[:2], fetched_limit=5, per_page=10, after=None, until=None)
    assert short.next_since is None


def test_event_summary() -> None:
    assert summary({"readable": True, "telefono": "+34600111222", "mensaje": "x"}) == "telefono: +34600111222"
    assert summary({"readable": False, "raw": "not json"}) == "not json"


def test_the_panel_refuses_to_start_without_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from token_panel.__main__ import main

    monkeypatch.setenv("PANEL_SECRET_KEY", "short")
    monkeypatch.delenv("VALIDATOR_ADMIN_KEY", raising=False)
    assert main() == 2
