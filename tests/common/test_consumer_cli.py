"""The loop a consumer process builds from its settings: batch size and prefetch by provider."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cartero_common.consume import Delivery, Outcome, loop_from_settings
from cartero_common.consume.cli import BATCH_PREFETCH, DELIVERY_BATCH_SIZE, NETWORK_PREFETCH, default_prefetch
from consumer_sms.config import Settings


def nothing(batch: Sequence[Delivery]) -> list[Outcome]:
    return []


def batch_size(*, batchable: bool, default: int | None) -> int:
    loop = loop_from_settings(
        Settings(), service="t", queue="cola_sms", handler=nothing, prefetch=10, batchable=batchable, batch_size=default
    )
    return loop.batch_size


def test_the_delivering_consumers_batch_size_unless_the_setting_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSUMER_BATCH_SIZE", raising=False)
    assert batch_size(batchable=True, default=DELIVERY_BATCH_SIZE) == DELIVERY_BATCH_SIZE
    assert batch_size(batchable=True, default=None) == Settings().consumer_batch_size  # consumer_logs
    assert batch_size(batchable=False, default=DELIVERY_BATCH_SIZE) == 1
    monkeypatch.setenv("CONSUMER_BATCH_SIZE", "7")
    assert batch_size(batchable=True, default=DELIVERY_BATCH_SIZE) == 7
    assert batch_size(batchable=True, default=None) == 7
    assert batch_size(batchable=False, default=DELIVERY_BATCH_SIZE) == 1


def test_prefetch_by_provider_unless_set() -> None:
    assert default_prefetch(None, batchable=True) == BATCH_PREFETCH
    assert default_prefetch(None, batchable=False) == NETWORK_PREFETCH
    assert default_prefetch(3, batchable=True) == 3
    # Several batches in flight at once: one being handled while the others wait for confirms.
    assert BATCH_PREFETCH >= 8 * DELIVERY_BATCH_SIZE
