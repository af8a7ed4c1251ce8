"""A panel session ends with its admin, and outlives no sign-out, whatever happens to the panel.

Real processes: the validator served on its own database (SQLite, then PostgreSQL), and the panel
run as `python -m token_panel` (once, twice side by side, and restarted), visited over HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.consumer_logs.support import READ_KEY
from tests.support import ROOT, free_port, python_env, stop_process, wait_http
from tests.token_panel.support import SECRET, MessageLogDb, create_admin, csrf_of, unique
from tests.token_validator.support import ADMIN_KEY, RunningValidator, serve_validator

MAX_FAILURES, MAX_FAILURES_PER_ADDRESS = 3, 5
API = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def validator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningValidator]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sessions-validator')}/token_validator.db"
    else:
        url = request.getfixturevalue("pg_url")
    with serve_validator(
        url, panel_signin_max_failures=MAX_FAILURES, panel_signin_max_failures_per_address=MAX_FAILURES_PER_ADDRESS
    ) as running:
        create_admin(running.url)  # so that the admin a test deletes is never the last one
        yield running


class Panel:
    """`python -m token_panel` on a port of its own, behind a "proxy" at 127.0.0.1, so a test can
    say which client address each visit comes from (X-Forwarded-For)."""

    def __init__(self, validator: RunningValidator, message_log: MessageLogDb, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = python_env(
            TOKEN_PANEL_PORT=str(self.port),
            VALIDATOR_URL=validator.url,
            VALIDATOR_ADMIN_KEY=ADMIN_KEY,
            CONSUMER_LOGS_URL=message_log.url,
            CONSUMER_LOGS_READ_KEY=READ_KEY,
            PANEL_SECRET_KEY=SECRET,
            TRUSTED_PROXIES="127.0.0.1",
            LOG_LEVEL="WARNING",
        )
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self._log, "ab") as out:
            command = [sys.executable, "-m", "token_panel"]
            self._process = subprocess.Popen(command, cwd=ROOT, env=self._env, stdout=out, stderr=out)
        wait_http(f"{self.url}/healthz")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def restart(self) -> None:
        """A new process: whatever the old one held in memory is gone."""
        self.stop()
        self.start()

    def client(self, address: str = "203.0.113.1") -> httpx.Client:
        headers = {"X-Forwarded-For": address}
        return httpx.Client(base_url=self.url, headers=headers, follow_redirects=False, timeout=10)


@contextmanager
def _panels(count: int, validator: RunningValidator, message_log: MessageLogDb, tmp: Path) -> Iterator[list[Panel]]:
    with ExitStack() as stack:
        panels = []
        for n in range(count):
            panel = Panel(validator, message_log, tmp / f"panel-{n}.log")
            stack.callback(panel.stop)
            panel.start()
            panels.append(panel)
        yield panels


@pytest.fixture(scope="module")
def panel(
    validator: RunningValidator, message_log: MessageLogDb, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Panel]:
    with _panels(1, validator, message_log, tmp_path_factory.mktemp("panel")) as (one,):
        yield one


def _admin(validator: RunningValidator) -> tuple[str, str]:
    name, password = unique("admin"), "a long enough password"
    create_admin(validator.url, name, password)
    return name, password


def _sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    page = client.get("/signin")
    data = {"csrf": csrf_of(page.text), "username": username, "password": password}
    return client.post("/signin", data=data)


def _signed_in(panel: Panel, username: str, password: str) -> httpx.Client:
    client = panel.client()
    response = _sign_in(client, username, password)
    assert response.status_code == 303 and response.headers["location"] == "/", response.text
    assert client.get("/").status_code == 200
    return client


def _audited(validator: RunningValidator, **params: str) -> int:
    found = httpx.get(f"{validator.url}/v1/admin/audit", params=params, headers=API, timeout=10).json()
    total: int = found["total"]
    return total


def _applications_named(validator: RunningValidator, name: str) -> int:
    found = httpx.get(f"{validator.url}/v1/admin/applications", params={"q": name}, headers=API, timeout=10).json()
    return sum(1 for item in found["items"] if item["name"] == name)


def test_a_deleted_admins_session_creates_nothing(validator: RunningValidator, panel: Panel) -> None:
    name, password = _admin(validator)
    browser = _signed_in(panel, name, password)
    form = csrf_of(browser.get("/applications").text)  # the form is on screen when the account goes
    assert httpx.delete(f"{validator.url}/v1/admin/admins/{name}", headers=API, timeout=10).status_code == 204

    application = unique("made-after-deletion")
    refused = browser.post("/applications", data={"csrf": form, "name": application})
    assert refused.status_code == 303 and refused.headers["location"] == "/signin"
    assert _applications_named(validator, application) == 0
    assert _audited(validator, actor=name, action="application.create") == 0
    assert browser.get("/").status_code == 303


def test_a_new_password_ends_the_old_session(validator: RunningValidator, panel: Panel) -> None:
    name, password = _admin(validator)
    browser = _signed_in(panel, name, password)
    form = csrf_of(browser.get("/applications").text)
    changed = httpx.put(
        f"{validator.url}/v1/admin/admins/{name}/password", json={"password": "the new password"}, headers=API
    )
    assert changed.status_code == 204

    application = unique("made-after-new-password")
    refused = browser.post("/applications", data={"csrf": form, "name": application})
    assert refused.status_code == 303 and refused.headers["location"] == "/signin"
    assert _applications_named(validator, application) == 0
    assert browser.get("/tokens").headers["location"] == "/signin?next=%2Ftokens"
    # The new password signs in; the old one no longer does.
    assert _sign_in(panel.client(), name, password).status_code == 401
    again = _signed_in(panel, name, "the new password")
    made = again.post("/applications", data={"csrf": csrf_of(again.get("/applications").text), "name": application})
    assert made.status_code == 303 and _applications_named(validator, application) == 1
    assert _audited(validator, actor=name, action="application.create") == 1


def test_a_signed_out_cookie_stays_refused_after_a_panel_restart(validator: RunningValidator, panel: Panel) -> None:
    name, password = _admin(validator)
    browser = _signed_in(panel, name, password)
    copied = dict(browser.cookies)
    with panel.client() as thief:
        thief.cookies.update(copied)
        assert thief.get("/").status_code == 200  # a copy works while the session lives
        signed_out = browser.post("/signout", data={"csrf": csrf_of(browser.get("/").text)})
        assert signed_out.status_code == 303
        assert thief.get("/").status_code == 303
        panel.restart()
        assert thief.get("/").status_code == 303
        assert thief.get("/tokens").headers["location"] == "/signin?next=%2Ftokens"


def test_the_throttle_holds_across_panel_processes_and_restarts(
    validator: RunningValidator, message_log: MessageLogDb, tmp_path: Path
) -> None:
    name, password = _admin(validator)
    attacker, elsewhere = "203.0.113.50", "198.51.100.50"
    with _panels(2, validator, message_log, tmp_path) as (first, second):
        # The failures spread over both processes, one restarted between them: counted as one.
        codes = []
        for n in range(MAX_FAILURES):
            panel = (first, second)[n % 2]
            if n == 1:
                first.restart()
            codes.append(_sign_in(panel.client(attacker), name, "a wrong guess").status_code)
        assert codes == [401] * MAX_FAILURES
        for panel in (first, second):
            blocked = _sign_in(panel.client(attacker), name, password)
            assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
            assert 0 < int(blocked.headers["retry-after"]) <= 900
        second.restart()
        assert _sign_in(second.client(attacker), name, password).status_code == 429
        # The admin, from another address, still signs in, through either process.
        assert _sign_in(first.client(elsewhere), name, password).status_code == 303
        # Other names from the attacker's address: stopped once the address has its fill.
        others = [
            _sign_in((first, second)[n % 2].client(attacker), unique("guess"), "wrong").status_code for n in range(3)
        ]
        assert others == [401] * (MAX_FAILURES_PER_ADDRESS - MAX_FAILURES) + [429]
