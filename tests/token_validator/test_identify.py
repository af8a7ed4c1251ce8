"""`POST /v1/identify`: whose token it is, with nothing spent and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.token_validator.support import SERVICE_KEY, RunningValidator, serve_validator

AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}


@pytest.fixture
def validator(tmp_path: Path) -> Iterator[RunningValidator]:
    with serve_validator(f"sqlite:///{tmp_path}/v.db") as running:
        yield running


def _identify(validator: RunningValidator, token: str, headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{validator.url}/v1/identify", json={"token": token}, headers=headers, timeout=5)


def _rows(validator: RunningValidator, table: str) -> int:
    with validator.db.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_it_names_the_owner_of_a_usable_token_and_spends_nothing(validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("application", "shop", actions="sms.send", restriction="max_uses", limit=1)
    answer = _identify(validator, token)
    owner_id = validator.tokens.owner("application", "shop")
    assert answer.status_code == 200
    assert answer.json() == {
        "code": "ok",
        "owner_ref": f"application:{owner_id}",
        "token_id": token_id,
        "prefix": token[:8],
    }
    assert validator.tokens.used(token_id) == 0 and _rows(validator, "usages") == 0


def test_spent_quota_does_not_hide_the_owner(validator: RunningValidator) -> None:
    token, token_id = validator.tokens.make("user", "ana", restriction="max_uses", limit=0)
    assert _identify(validator, token).json()["code"] == "ok"


def test_refusals_name_no_owner_and_store_nothing(validator: RunningValidator) -> None:
    revoked, revoked_id = validator.tokens.make("application", "old")
    validator.tokens.revoke(revoked_id)
    disabled, _ = validator.tokens.make("group", "off")
    validator.tokens.disable("group", "off")
    for token, code in (
        ("app_" + "x" * 43, "invalid_token"),
        ("not a token", "invalid_token"),
        (revoked, "token_revoked"),
        (disabled, "subject_disabled"),
    ):
        answer = _identify(validator, token).json()
        assert (answer["code"], answer["owner_ref"]) == (code, None), token
    assert _rows(validator, "refusals") == 0


def test_it_needs_the_service_key(validator: RunningValidator) -> None:
    token, _ = validator.tokens.make()
    assert _identify(validator, token, headers={}).status_code == 401
    assert _identify(validator, token, headers={"Authorization": "Bearer wrong"}).status_code == 401
