from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartero_common.clock import FixedClock
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, Tokens, migrated, settings_for
from token_validator.app import create_app
from token_validator.db import Database

SERVICE = {"Authorization": f"Bearer {SERVICE_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Cartero-Admin": "ana.admin"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/token_validator.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = migrated(database_url)
    yield database
    database.dispose()


@pytest.fixture
def tokens(db: Database, clock: FixedClock) -> Tokens:
    return Tokens(db, clock)


@pytest.fixture
def api(database_url: str, db: Database, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(database_url), clock=clock, db=db)) as client:
        yield client


def validate(api: TestClient, token: str, action: str = "sms.send", **extra: Any) -> dict[str, Any]:
    response = api.post("/v1/validate", json={"token": token, "action": action, **extra}, headers=SERVICE)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
