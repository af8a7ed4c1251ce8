"""The three-node cluster (`netns_cluster.py`), once per session; `make test-cluster` runs these
tests, and plain `pytest` leaves them out (pyproject.toml's addopts: `-m 'not cluster'`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.netns_cluster import NetnsCluster, missing_requirements
from tests.support import unavailable

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Iterator[NetnsCluster]:
    missing = missing_requirements()
    if missing:
        unavailable(f"the network-namespace cluster: it needs {missing}")
    running = NetnsCluster()
    try:
        running.up().start()
        yield running
    finally:
        running.down()


@pytest.fixture
def whole(cluster: NetnsCluster) -> NetnsCluster:
    """The cluster with every node running and every link up, whatever the test before did."""
    cluster.make_whole()
    return cluster
