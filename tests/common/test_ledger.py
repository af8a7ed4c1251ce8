"""The dedupe ledger on both databases it runs on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from cartero_common.consume import Ledger
from tests.consumers import ledger_for


def test_records_ids_per_queue_and_ignores_a_second_record(database_url: str) -> None:
    sms: Ledger = ledger_for(database_url, "cola_sms")
    email = ledger_for(database_url, "correos")  # a second migration run is a no-op
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    sms.record([("a", at, None), ("b", at, None)])
    sms.record([("a", at + timedelta(hours=1), None)])  # a redelivery recorded again: the first stays
    assert sms.lookup(["a", "b", "c"]) == {"a": (at, None), "b": (at, None)}
    assert sms.lookup(["a"])["a"].at.tzinfo is not None
    assert sms.lookup(["a"])["a"].at == at.astimezone(UTC)
    assert email.lookup(["a", "b"]) == {}  # ids are per queue
    assert sms.lookup([]) == {}


def test_keeps_the_provider_that_took_each_message(database_url: str) -> None:
    sms: Ledger = ledger_for(database_url, "cola_sms")
    at = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    sms.record([("named", at, "http://gateway-b:8080/send"), ("unnamed", at, None)])  # b: a provider without a name
    sms.record([("named", at + timedelta(hours=1), "http://gateway-a:8080/send")])  # the first row stays
    found = sms.lookup(["named", "unnamed", "never"])
    assert found == {"named": (at, "http://gateway-b:8080/send"), "unnamed": (at, None)}
    assert found["named"].provider == "http://gateway-b:8080/send" and found["named"].at == at
