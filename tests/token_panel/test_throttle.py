"""The sign-in throttle as served (uvicorn, as `python -m token_panel` runs it): per username from
one address and per address (the validator's limits: 2 and 4 here), with X-Forwarded-For believed
from TRUSTED_PROXIES only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from tests.support import free_port, wait_until
from tests.token_panel.support import ADMIN, PASSWORD, MessageLogDb, csrf_of, panel_settings
from tests.token_validator.support import RunningValidator
from token_panel.__main__ import server_options
from token_panel.app import create_app
from token_panel.config import Settings, settings_problems


@contextmanager
def _served_panel(settings: Settings) -> Iterator[str]:
    options = {**server_options(settings), "port": free_port(), "host": "127.0.0.1"}
    options.pop("workers")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20, what="the panel")
    try:
        yield f"http://127.0.0.1:{options['port']}"
    finally:
        server.should_exit = True
        thread.join(10)


def _attempt(base: str, username: str, password: str, forwarded_for: str) -> int:
    with httpx.Client(base_url=base, headers={"X-Forwarded-For": forwarded_for}) as client:
        page = client.get("/signin")
        data = {"csrf": csrf_of(page.text), "username": username, "password": password}
        return client.post("/signin", data=data).status_code


def test_a_rotating_x_forwarded_for_does_not_reset_the_count(
    throttled_validator: RunningValidator, message_log: MessageLogDb
) -> None:
    settings = panel_settings(throttled_validator.url, message_log.url)
    with _served_panel(settings) as base:
        codes = [_attempt(base, f"guess-{n}", "wrong", f"10.9.0.{n}") for n in range(8)]
    # A new name and a new claimed address each time: still one client, stopped after 4.
    assert codes == [401] * 4 + [429] * 4


def test_behind_a_trusted_proxy_a_lockout_is_that_clients_only(
    throttled_validator: RunningValidator, message_log: MessageLogDb
) -> None:
    settings = panel_settings(throttled_validator.url, message_log.url, trusted_proxies="192.0.2.0/24, 127.0.0.1")
    with _served_panel(settings) as base:
        attacker = "203.0.113.7"
        assert [_attempt(base, ADMIN, "wrong", attacker) for _ in range(3)] == [401, 401, 429]
        # The real admin, elsewhere, still signs in; the attacker, trying other names, soon stops.
        assert _attempt(base, ADMIN, PASSWORD, "198.51.100.20") == 303
        assert [_attempt(base, f"other-{n}", "wrong", attacker) for n in range(3)] == [401, 401, 429]
        # The rightmost address a trusted proxy did not add is the client: a forged first entry
        # does not make the attacker someone else.
        assert _attempt(base, ADMIN, PASSWORD, f"198.51.100.20, {attacker}, 192.0.2.1") == 429


def test_trusted_proxies_setting_and_its_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().trusted_proxy_list() == []
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1")
    assert Settings().trusted_proxy_list() == ["10.0.0.1"]
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.2, 172.16.0.0/12")
    assert Settings().trusted_proxy_list() == ["10.0.0.2", "172.16.0.0/12"]
    monkeypatch.setenv("TRUSTED_PROXIES", "proxy.example")
    problems = settings_problems(
        Settings(panel_secret_key="s" * 32, validator_admin_key="k", consumer_logs_read_key="r")
    )
    assert problems == ["TRUSTED_PROXIES: 'proxy.example' is not an IP address or network"]
