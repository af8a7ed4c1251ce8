"""schemathesis against the sender's and the validator's OpenAPI documents: whatever it sends,
no 5xx, and answers that conform to the document.

Both services are the real apps served in this process (uvicorn in a thread), the sender with a
real broker vhost and a real validator, the validator on SQLite and on PostgreSQL. Runs are
derandomized and bounded (`max_examples`; the coverage phase adds its boundary cases) so the
module stays within about two minutes on two cores, and fails the same way each time it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks

from cartero_common.db import make_engine, make_sessionmaker, migrate
from consumer_logs.__main__ import ALEMBIC as LOGS_ALEMBIC
from consumer_logs.api import create_app as create_logs
from sender.app import create_app as create_sender
from sender.config import Settings
from tests.consumer_logs.support import READ_KEY
from tests.sender.conftest import sender_settings
from tests.sender.test_message_status import STATUS_KEY
from tests.support import isolated_vhost, served
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, serve_validator, settings_for
from token_validator.app import create_app as create_validator


def _bounded(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            # The services are module fixtures on purpose: started once, shared by every example.
            HealthCheck.function_scoped_fixture,
        ],
    )


# JSON Schema's `email` format admits addresses on special-use names (RFC 6761: `.test`,
# `.invalid`, `.localhost`…), which can receive no mail and which the sender refuses with 422, as
# its field description says. Addresses are drawn from names that can.
schemathesis.openapi.format(
    "email", st.from_regex(r"[a-z0-9]{1,16}(\.[a-z0-9]{1,8})?@[a-z0-9]{1,12}\.(com|org|es|net)", fullmatch=True)
)


def _document(app: Any) -> schemathesis.BaseSchema:
    """The app's own document; building it opens no connection, so it is read at import."""
    return schemathesis.openapi.from_dict(app.openapi())


SENDER = _document(create_sender(Settings(amqp_url="amqp://unused", validator_url="http://unused")))
VALIDATOR = _document(create_validator(settings_for("sqlite:///unused.db")))

# What the validator's document does not describe yet, so these checks would fail on every
# operation for reasons its owners track (no 401/404 listed, 422 documented as application/json
# where problem+json is sent, query and body rules the document does not state, Allow headers):
# for the validator, no 5xx and documented answers that match their schema.
VALIDATOR_CHECKS = [checks.not_a_server_error, checks.response_schema_conformance]


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def sender_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One sender (a real validator on SQLite, a real broker vhost, a real message log on SQLite)
    for every operation."""
    tmp = tmp_path_factory.mktemp("fuzz-sender")
    logs_url = f"sqlite:///{tmp}/consumer_logs.db"
    migrate(script_location=LOGS_ALEMBIC, url=logs_url, version_table="alembic_version_consumer_logs")
    logs_engine = make_engine(logs_url)
    logs_app = create_logs(make_sessionmaker(logs_engine), read_key=READ_KEY, status_key=STATUS_KEY)
    with (
        serve_validator(f"sqlite:///{tmp}/token_validator.db") as validator,
        isolated_vhost("cartero-fuzz") as broker_url,
        served(logs_app) as logs,
        served(
            create_sender(
                sender_settings(broker_url, validator, consumer_logs_url=logs, consumer_logs_status_key=STATUS_KEY)
            )
        ) as url,
    ):
        token, _ = validator.tokens.make("application", "schemathesis")
        yield Target(url, {"Authorization": f"Bearer {token}"})
    logs_engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def validator_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One validator per database for every operation: what one case creates, the next finds."""
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz-validator')}/token_validator.db"
    else:
        database_url = request.getfixturevalue("pg_url")
    with serve_validator(database_url) as validator:
        yield validator.url


def _validator_headers(path: str) -> dict[str, str]:
    if path.startswith("/v1/admin"):
        return {"Authorization": f"Bearer {ADMIN_KEY}", "X-Cartero-Admin": "fuzz.admin"}
    return {"Authorization": f"Bearer {SERVICE_KEY}"}


@SENDER.parametrize()
@_bounded(10)
def test_sender(case: schemathesis.Case[Any], sender_api: Target) -> None:
    """Every default check: the sender's document states its rules and its problems."""
    case.call_and_validate(base_url=sender_api.url, headers=sender_api.headers)


@VALIDATOR.parametrize()
@_bounded(4)
def test_validator(case: schemathesis.Case[Any], validator_api: str) -> None:
    case.call_and_validate(base_url=validator_api, headers=_validator_headers(case.path), checks=VALIDATOR_CHECKS)
