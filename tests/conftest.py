from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test once on a SQLite file and once on the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
    else:
        yield request.getfixturevalue("pg_url")
