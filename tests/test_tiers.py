"""The unit tier (`make test-unit`) holds no test that needs a live service, whatever it is
marked with by hand: `tests/conftest.py` tiers tests by the fixtures and calls they use."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

UNIT = "not integration and not e2e and not browser and not docker and not cluster"


def _unit_tier() -> set[str]:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", UNIT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {line for line in collected.stdout.splitlines() if "::" in line}


def test_the_unit_tier_leaves_out_every_test_that_reaches_a_service() -> None:
    unit = _unit_tier()
    assert unit, "the unit tier is empty"
    # Reaches the broker through a fixture of its own module, with no marker of its own.
    assert not any(t.startswith("tests/common/test_consumer_loop.py::test_shared_queues") for t in unit)
    # Uses the session's PostgreSQL through `database_url`; the same test on SQLite stays.
    reconcile = {t for t in unit if t.startswith("tests/token_validator/test_reconcile.py::")}
    assert reconcile and all("[sqlite]" in t for t in reconcile), reconcile
    # The slow-broker tests run consumers, a validator and a proxy to the broker.
    assert not any(t.startswith("tests/sender/test_slow_broker.py::") for t in unit)
    # The cluster's tests need root and three brokers of their own: never in the unit tier.
    assert not any(t.startswith("tests/cluster/") for t in unit)
    # Plain functions stay in it.
    assert any(t.startswith("tests/common/test_schemas.py::") for t in unit)
