"""Uses kept for unconfirmed publishes: marked, settled, refunded, reconciled (SQLite and PostgreSQL).

The message log is what `reconcile` is handed: a plain lookup function here, as the module takes
it; the real consumer_logs answers it in tests/sender/test_slow_broker.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from cartero_common.clock import FixedClock
from tests.consumer_logs.support import READ_KEY
from tests.token_panel.support import serve_message_log
from tests.token_validator.conftest import SERVICE, validate
from tests.token_validator.support import Tokens
from token_validator import reconcile
from token_validator.db import Database
from token_validator.moment import Moment

AFTER = timedelta(minutes=10)


def _claim(key: str, message_id: str) -> dict[str, Any]:
    return {"key": key, "fingerprint": "a" * 64, "response": {"status": 202, "body": {"id": message_id}}}


def _kept_use(
    api: TestClient, tokens: Tokens, name: str, message_id: str, key: str | None = None
) -> tuple[str, str, int]:
    """(token, usage id, token id) of a 1-use token whose one use is kept unconfirmed."""
    token, token_id = tokens.make("application", name, restriction="max_uses", limit=1)
    extra: dict[str, Any] = {"idempotency": _claim(key, message_id)} if key else {}
    usage_id = str(validate(api, token, **extra)["usage_id"])
    marked = api.post(f"/v1/usage/{usage_id}/unconfirmed", json={"message_id": message_id}, headers=SERVICE)
    assert marked.status_code == 200, marked.text
    return token, usage_id, token_id


def _moment(clock: FixedClock) -> Moment:
    return Moment.at(clock(), ZoneInfo("Europe/Madrid"))


def _log(events: dict[str, list[str]]) -> reconcile.MessageLookup:
    def events_of(message_id: str) -> Iterable[str]:
        return events.get(message_id, [])

    return events_of


def test_marking_needs_a_counted_use_and_the_service_key(api: TestClient, tokens: Tokens) -> None:
    unknown = api.post(f"/v1/usage/{'f' * 32}/unconfirmed", json={"message_id": "m"}, headers=SERVICE)
    assert unknown.status_code == 404
    _, usage_id, _ = _kept_use(api, tokens, "mark", "m-mark")
    assert api.post(f"/v1/usage/{usage_id}/unconfirmed", json={"message_id": "m"}).status_code == 401
    for bad in ({"message_id": ""}, {"message_id": 5}, {"message_id": "a b"}, {}, {"message_id": "m", "x": 1}):
        assert api.post(f"/v1/usage/{usage_id}/unconfirmed", json=bad, headers=SERVICE).status_code == 422, bad


def test_a_confirm_settles_a_kept_use_once(api: TestClient, tokens: Tokens, db: Database) -> None:
    _, usage_id, token_id = _kept_use(api, tokens, "settle", "m-settle")
    assert reconcile.kept(db.engine) == 1
    assert api.post(f"/v1/usage/{usage_id}/confirm", headers=SERVICE).status_code == 200
    assert reconcile.kept(db.engine) == 0 and tokens.used(token_id) == 1
    assert api.post(f"/v1/usage/{usage_id}/confirm", headers=SERVICE).status_code == 404


def test_a_retry_with_the_key_of_a_kept_use_republishes_its_id(api: TestClient, tokens: Tokens) -> None:
    token, token_id = tokens.make("application", "retry-id", restriction="max_uses", limit=1)
    first = validate(api, token, idempotency=_claim("k", "m-first"))
    api.post(f"/v1/usage/{first['usage_id']}/unconfirmed", json={"message_id": "m-first"}, headers=SERVICE)
    retry = validate(api, token, idempotency=_claim("k", "m-second"))
    assert retry["allowed"] and retry["idempotency"]["outcome"] == "retry"
    assert retry["idempotency"]["response"]["body"] == {"id": "m-first"}
    assert retry["usage_id"] == first["usage_id"] and tokens.used(token_id) == 1
    api.post(f"/v1/usage/{first['usage_id']}/confirm", headers=SERVICE)
    replay = validate(api, token, idempotency=_claim("k", "m-third"))
    assert replay["idempotency"]["outcome"] == "replay" and tokens.used(token_id) == 1


def test_reconciliation_settles_what_a_consumer_reported_and_refunds_the_rest(
    api: TestClient, tokens: Tokens, db: Database, clock: FixedClock
) -> None:
    reached, _, reached_id = _kept_use(api, tokens, "reached", "m-reached", key="k1")
    never, _, never_id = _kept_use(api, tokens, "never", "m-never", key="k2")
    _, _, only_sent_id = _kept_use(api, tokens, "only-sent", "m-only-sent")
    log = _log({"m-reached": ["enviado", "reintento"], "m-only-sent": ["enviado"]})

    early = reconcile.reconcile(db.engine, log, _moment(clock), AFTER)
    assert early == reconcile.Report(), "nothing is decided before RECONCILE_AFTER"
    clock.set(clock() + AFTER)
    assert reconcile.reconcile(db.engine, log, _moment(clock), AFTER) == reconcile.Report(settled=1, refunded=2)
    assert tokens.used(reached_id) == 1
    assert tokens.used(never_id) == 0
    # The sender's own `enviado` is published beside the message: it proves nothing.
    assert tokens.used(only_sent_id) == 0
    assert reconcile.kept(db.engine) == 0
    assert REGISTRY.get_sample_value("validator_unconfirmed_uses") == 0
    assert reconcile.reconcile(db.engine, log, _moment(clock), AFTER) == reconcile.Report()
    # Settled, the key replays the 202; refunded, the key is released for a fresh try.
    assert validate(api, reached, idempotency=_claim("k1", "m-other"))["idempotency"]["outcome"] == "replay"
    assert validate(api, never, idempotency=_claim("k2", "m-other"))["idempotency"]["outcome"] == "new"


def test_reconciliation_waits_while_the_message_log_cannot_be_asked(
    api: TestClient, tokens: Tokens, db: Database, clock: FixedClock
) -> None:
    _, _, token_id = _kept_use(api, tokens, "log-down", "m-log-down")

    def down(_: str) -> Iterable[str]:
        raise reconcile.MessageLogUnavailable("connection refused")

    clock.set(clock() + AFTER)
    assert reconcile.reconcile(db.engine, down, _moment(clock), AFTER).undecided == 1
    assert REGISTRY.get_sample_value("validator_unconfirmed_uses") == 1
    assert tokens.used(token_id) == 1 and reconcile.kept(db.engine) == 1
    unreachable = reconcile.message_log_lookup("http://127.0.0.1:9", timeout=1)
    with pytest.raises(reconcile.MessageLogUnavailable):
        list(unreachable("m-log-down"))


def test_a_refund_ends_a_kept_use_and_a_refunded_use_cannot_be_kept(
    api: TestClient, tokens: Tokens, db: Database
) -> None:
    _, usage_id, token_id = _kept_use(api, tokens, "late-nack", "m-late-nack")
    assert api.post(f"/v1/usage/{usage_id}/refund", headers=SERVICE).json()["status"] == "refunded"
    assert reconcile.kept(db.engine) == 0 and tokens.used(token_id) == 0
    again = api.post(f"/v1/usage/{usage_id}/unconfirmed", json={"message_id": "m"}, headers=SERVICE)
    assert again.status_code == 404


def test_the_lookup_presents_the_message_logs_read_key(tmp_path: Path) -> None:
    """Against a real consumer_logs read API: refused without its key (so nothing is decided),
    answered with it."""
    with serve_message_log(tmp_path / "consumer_logs.db") as log:
        log.add({"id": "m-key", "evento": "consumido", "cola": "cola_sms"}, datetime.now(UTC))
        for key in ("", "not-the-read-key"):
            with pytest.raises(reconcile.MessageLogUnavailable, match="401"):
                list(reconcile.message_log_lookup(log.url, read_key=key)("m-key"))
        assert list(reconcile.message_log_lookup(log.url, read_key=READ_KEY)("m-key")) == ["consumido"]
