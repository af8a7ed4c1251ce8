from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.token_panel.support import (
    MAX_FAILURES,
    MAX_FAILURES_PER_ADDRESS,
    MessageLogDb,
    create_admin,
    panel_client,
    panel_settings,
    serve_message_log,
    sign_in,
)
from tests.token_validator.support import RunningValidator, serve_validator


@pytest.fixture(scope="session")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningValidator]:
    """A real token validator on a free port (its own SQLite file), with an admin account."""
    path = tmp_path_factory.mktemp("panel-validator") / "token_validator.db"
    with serve_validator(f"sqlite:///{path}") as running:
        create_admin(running.url)
        yield running


@pytest.fixture(scope="session")
def throttled_validator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningValidator]:
    """A second real validator, with a tight sign-in throttle. The counts are the validator's and
    outlive any one panel: each test that uses it signs in from addresses of its own."""
    path = tmp_path_factory.mktemp("panel-validator-throttled") / "token_validator.db"
    with serve_validator(
        f"sqlite:///{path}",
        panel_signin_max_failures=MAX_FAILURES,
        panel_signin_max_failures_per_address=MAX_FAILURES_PER_ADDRESS,
    ) as running:
        create_admin(running.url)
        yield running


@pytest.fixture(scope="session")
def message_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MessageLogDb]:
    """consumer_logs' read API on a free port, over its own migrated SQLite database."""
    with serve_message_log(tmp_path_factory.mktemp("panel-logs") / "consumer_logs.db") as running:
        yield running


@pytest.fixture
def anonymous(validator: RunningValidator, message_log: MessageLogDb) -> Iterator[TestClient]:
    with panel_client(panel_settings(validator.url, message_log.url)) as client:
        yield client


@pytest.fixture
def admin(anonymous: TestClient) -> TestClient:
    """A panel client with an admin signed in."""
    response = sign_in(anonymous)
    assert response.status_code == 303, response.text
    return anonymous
