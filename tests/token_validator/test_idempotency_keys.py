"""Idempotency records kept for the senders: replay, in progress, stale claims, expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from cartero_common.clock import FixedClock
from tests.token_validator.conftest import SERVICE, validate
from tests.token_validator.support import Tokens


def _claim(key: str, fingerprint: str = "a" * 64, message_id: str = "m-1") -> dict[str, Any]:
    return {"key": key, "fingerprint": fingerprint, "response": {"status": 202, "body": {"id": message_id}}}


def test_claim_confirm_replay_and_mismatch(api: TestClient, tokens: Tokens) -> None:
    token, token_id = tokens.make("application", "idem", restriction="max_uses", limit=5)
    first = validate(api, token, idempotency=_claim("k"))
    assert first["allowed"] and first["idempotency"]["outcome"] == "new" and first["usage_id"]
    busy = validate(api, token, idempotency=_claim("k", message_id="m-2"))
    assert not busy["allowed"] and busy["code"] == "idempotency_in_progress" and busy["usage_id"] is None
    assert api.post(f"/v1/usage/{first['usage_id']}/confirm", headers=SERVICE).status_code == 200
    replay = validate(api, token, idempotency=_claim("k", message_id="m-3"))
    assert replay["allowed"] and replay["idempotency"] == {
        "outcome": "replay",
        "response": {"status": 202, "body": {"id": "m-1"}},
    }
    other = validate(api, token, idempotency=_claim("k", fingerprint="b" * 64))
    assert other["code"] == "idempotency_key_mismatch"
    assert tokens.used(token_id) == 1
    assert api.post(f"/v1/usage/{'f' * 32}/confirm", headers=SERVICE).status_code == 404


def test_a_stale_claim_is_handed_over_and_keys_expire(api: TestClient, tokens: Tokens, clock: FixedClock) -> None:
    token, token_id = tokens.make("application", "idem-stale", restriction="max_uses", limit=5)
    first = validate(api, token, idempotency=_claim("k", message_id="first"))
    clock.set(clock() + timedelta(minutes=5))  # the first sender never confirmed
    retry = validate(api, token, idempotency=_claim("k", message_id="second"))
    assert retry["allowed"] and retry["idempotency"]["outcome"] == "retry"
    assert retry["idempotency"]["response"]["body"] == {"id": "first"} and retry["usage_id"] == first["usage_id"]
    assert tokens.used(token_id) == 1
    api.post(f"/v1/usage/{retry['usage_id']}/confirm", headers=SERVICE)
    clock.set(clock() + timedelta(hours=25))
    fresh = validate(api, token, idempotency=_claim("k", message_id="third"))
    assert fresh["idempotency"]["outcome"] == "new" and tokens.used(token_id) == 2


def test_a_refund_releases_the_key(api: TestClient, tokens: Tokens) -> None:
    token, token_id = tokens.make("application", "idem-refund", restriction="max_uses", limit=5)
    first = validate(api, token, idempotency=_claim("k"))
    api.post(f"/v1/usage/{first['usage_id']}/refund", headers=SERVICE)
    again = validate(api, token, idempotency=_claim("k"))
    assert again["idempotency"]["outcome"] == "new" and tokens.used(token_id) == 1


def test_a_refused_request_claims_nothing(api: TestClient, tokens: Tokens) -> None:
    token, token_id = tokens.make("application", "idem-empty", restriction="max_uses", limit=1)
    validate(api, token)
    refused = validate(api, token, idempotency=_claim("k"))
    assert refused["code"] == "usage_exhausted" and refused["idempotency"] is None
    api.post(
        f"/v1/admin/tokens/{token_id}/remaining",
        json={"grant": 1},
        headers={"Authorization": "Bearer admin-key-for-tests-9876543210"},
    )
    assert validate(api, token, idempotency=_claim("k"))["idempotency"]["outcome"] == "new"
