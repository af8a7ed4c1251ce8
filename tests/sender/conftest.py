from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sender.app import create_app
from sender.config import Settings
from tests.support import isolated_vhost
from tests.token_validator.support import SERVICE_KEY, RunningValidator, serve_validator


@pytest.fixture
def broker_url() -> Iterator[str]:
    with isolated_vhost("cartero-sender") as url:
        yield url


@pytest.fixture(scope="session")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningValidator]:
    """A real token validator (SQLite file) on a free port, shared by the sender's tests."""
    path: Path = tmp_path_factory.mktemp("validator") / "token_validator.db"
    with serve_validator(f"sqlite:///{path}") as running:
        yield running


def sender_settings(broker_url: str, validator: RunningValidator, **extra: object) -> Settings:
    return Settings(
        amqp_url=broker_url,
        validator_url=validator.url,
        validator_service_key=SERVICE_KEY,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def token(validator: RunningValidator) -> str:
    """A fresh unlimited application token for every action."""
    plaintext, _ = validator.tokens.make("application", "sender-tests")
    return plaintext


@pytest.fixture
def client(broker_url: str, validator: RunningValidator, token: str) -> Iterator[TestClient]:
    app = create_app(sender_settings(broker_url, validator))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as test_client:
        yield test_client
