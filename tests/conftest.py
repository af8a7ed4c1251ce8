from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import isolated_database, isolated_vhost

# What reaches a live service (broker, database, a served validator or message log, the
# container engine). A test is marked `integration` when its own code or any fixture it uses,
# directly or through another fixture, calls one of these; `make test-unit` leaves it out.
LIVE_CALLS = (
    "isolated_vhost(",
    "isolated_database(",
    "serve_validator(",
    "served(",
    "serve_message_log(",
    "container_engine(",
    "rabbit_api(",
    "BlockingConnection(",
    "psycopg2.connect(",
    "start_consumer(",
    'getfixturevalue("pg_url")',
    "NetnsCluster(",
)


@functools.cache
def _reaches_live_service(function: Callable[..., Any]) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return any(call in source for call in LIVE_CALLS)


def needs_live_service(item: pytest.Item) -> bool:
    if isinstance(item, pytest.Function) and _reaches_live_service(item.function):
        return True
    definitions = item._fixtureinfo.name2fixturedefs if isinstance(item, pytest.Function) else {}
    for name in getattr(item, "fixturenames", ()):
        for definition in definitions.get(name, ()):
            if name == "database_url":
                # Once on SQLite (a file), once on the session's PostgreSQL.
                if "postgresql" in getattr(getattr(item, "callspec", None), "id", ""):
                    return True
            elif _reaches_live_service(definition.func):
                return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if needs_live_service(item):
            item.add_marker(pytest.mark.integration)


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
