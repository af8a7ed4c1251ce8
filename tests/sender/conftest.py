from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sender.app import create_app
from sender.config import Settings
from tests.support import isolated_vhost


@pytest.fixture
def broker_url() -> Iterator[str]:
    with isolated_vhost("cartero-sender") as url:
        yield url


@pytest.fixture
def client(broker_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(amqp_url=broker_url))) as test_client:
        yield test_client
