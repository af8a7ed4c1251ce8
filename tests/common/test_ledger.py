"""The dedupe ledger on both databases it runs on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from cartero_common.consume import Ledger
from tests.consumers import ledger_for


def test_records_ids_per_queue_and_ignores_a_second_record(database_url: str) -> None:
    sms: Ledger = ledger_for(database_url, "cola_sms")
    email = ledger_for(database_url, "correos")  # a second migration run is a no-op
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    sms.record([("a", at), ("b", at)])
    sms.record([("a", at + timedelta(hours=1))])  # a redelivery recorded again: the first stays
    assert sms.processed(["a", "b", "c"]) == {"a": at, "b": at}
    assert sms.processed(["a"])["a"].tzinfo is not None
    assert sms.processed(["a"])["a"] == at.astimezone(UTC)
    assert email.processed(["a", "b"]) == {}  # ids are per queue
    assert sms.processed([]) == {}
