"""A real panel for tests: a real validator (its own SQLite file), a real consumer_logs app on its
own database, and the panel wired to both; plain functions to sign in and read forms."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from cartero_common.clock import Clock, system_clock
from cartero_common.db import make_engine, make_sessionmaker, migrate
from consumer_logs.__main__ import ALEMBIC as LOGS_ALEMBIC
from consumer_logs.api import create_app as create_logs_app
from consumer_logs.repository import add_events, event_row
from tests.consumer_logs.support import READ_KEY
from tests.support import served
from tests.token_validator.support import ADMIN_KEY
from token_panel.app import create_app
from token_panel.config import Settings

ADMIN = "ana"
PASSWORD = "correct horse battery staple"
SECRET = "panel-secret-for-tests-0123456789abcdef"
# The sign-in throttle of the `throttled_validator` fixture.
MAX_FAILURES, MAX_FAILURES_PER_ADDRESS = 2, 4
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def create_admin(validator_url: str, username: str = ADMIN, password: str = PASSWORD) -> None:
    response = httpx.post(
        f"{validator_url}/v1/admin/admins",
        json={"username": username, "password": password},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert response.status_code in (201, 409), response.text


@dataclass
class MessageLogDb:
    url: str
    sessions: sessionmaker[Session]

    def add(self, body: dict[str, Any], stored_at: datetime) -> None:
        """Store an event the way consumer_logs' handler does with a delivery from `logs`."""
        self.add_raw(json.dumps(body).encode(), message_id=body.get("id"), stored_at=stored_at)

    def add_raw(self, body: bytes, *, message_id: str | None, stored_at: datetime) -> None:
        """Store any delivery body (JSON or not), as consumer_logs' handler does."""
        row = event_row(body, message_id=message_id, now=stored_at, store_content=True)
        with self.sessions.begin() as session:
            add_events(session, [row])


@contextmanager
def serve_message_log(path: Path) -> Iterator[MessageLogDb]:
    url = f"sqlite:///{path}"
    migrate(script_location=LOGS_ALEMBIC, url=url, version_table="alembic_version_consumer_logs")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with served(create_logs_app(sessions, read_key=READ_KEY)) as base:
            yield MessageLogDb(base, sessions)
    finally:
        engine.dispose()


def panel_settings(validator_url: str, logs_url: str, **extra: Any) -> Settings:
    return Settings(
        validator_url=validator_url,
        validator_admin_key=ADMIN_KEY,
        consumer_logs_url=logs_url,
        consumer_logs_read_key=READ_KEY,
        panel_secret_key=SECRET,
        **extra,
    )


@contextmanager
def panel_client(
    settings: Settings, clock: Clock = system_clock, *, address: str = "testclient"
) -> Iterator[TestClient]:
    """The panel app, visited from `address` (what the validator counts failed sign-ins by)."""
    app = create_app(settings, clock)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=(address, 50000)) as client:
        yield client


def session_id_of(cookie: str) -> str:
    """The validator's session id inside a panel session cookie."""
    data = URLSafeTimedSerializer(SECRET, salt="cartero-panel-session").loads(cookie)
    return str(data["sid"])


def live_session(validator_url: str, session_id: str) -> dict[str, Any] | None:
    """What the validator answers the panel for this session: its admin, or None once it ended."""
    response = httpx.get(
        f"{validator_url}/v1/admin/sessions/current",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "X-Cartero-Session": session_id},
        timeout=10,
    )
    if response.status_code == 404:
        assert response.json()["code"] == "session_ended"
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "the page has no CSRF field"
    return html.unescape(found.group(1))


def sign_in(client: TestClient, username: str = ADMIN, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/signin")
    data = {"csrf": csrf_of(page.text), "username": username, "password": password}
    response: httpx.Response = client.post("/signin", data=data)
    return response


def post_form(client: TestClient, path: str, data: dict[str, Any], *, from_page: str | None = None) -> httpx.Response:
    """Post a form the way a browser does: with the CSRF token of a page it was shown on."""
    page = client.get(from_page or "/")
    response: httpx.Response = client.post(path, data={"csrf": csrf_of(page.text), **data})
    return response
