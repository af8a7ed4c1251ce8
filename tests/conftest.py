from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import isolated_database, isolated_vhost


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """One vhost for the whole run; tests that need empty queues use `fresh_amqp_url`."""
    with isolated_vhost() as url:
        yield url


@pytest.fixture
def fresh_amqp_url() -> Iterator[str]:
    with isolated_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with isolated_database() as url:
        yield url
