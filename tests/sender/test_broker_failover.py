"""The sender given an `AMQP_URL` list: when its node is lost it publishes through another within
a second; with no node at all it answers 503 at once, never hanging; a node that returns is used
within a second. Three proxies to the one real broker stand for the nodes (`tests.tcp_proxy`)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from sender.app import create_app
from tests.sender.conftest import sender_settings
from tests.support import ROOT, queue_depth, record_figures
from tests.tcp_proxy import proxy_nodes
from tests.token_validator.support import RunningValidator

pytestmark = pytest.mark.integration

BACK_WITHIN = 1.0  # connected again within this of a node being there (the scale-out issue)
AT_ONCE = 0.15  # a 503 with no node reachable: no wait for a connection at all
SMS = {"mensaje": "hola", "telefono": "600111222"}
FIGURES = ROOT / "test-artifacts" / "broker-failover.json"


def timed_post(client: TestClient) -> tuple[int, float]:
    started = time.monotonic()
    response = client.post("/v1/sms", json=SMS)
    elapsed = time.monotonic() - started
    if response.status_code != 202:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "broker_unavailable"
    return response.status_code, elapsed


def until_accepted(client: TestClient, *, within: float) -> tuple[float, list[float]]:
    """Post until a 202; how long it took, and how long each 503 on the way took."""
    started = time.monotonic()
    refusals: list[float] = []
    while time.monotonic() - started < within + 2.0:
        code, elapsed = timed_post(client)
        if code == 202:
            return time.monotonic() - started, refusals
        refusals.append(elapsed)
        time.sleep(0.01)
    raise AssertionError(f"no 202 within {within + 2.0}s")


def test_the_sender_fails_over_answers_503_at_once_with_no_node_and_comes_back(
    validator: RunningValidator, token: str
) -> None:
    with proxy_nodes("cartero-sender-failover") as (nodes, urls, direct):
        app = create_app(sender_settings(urls, validator, publish_timeout=2.0))
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
            assert timed_post(client)[0] == 202
            (victim,) = [node for node in nodes if node.connections]

            victim.down()
            failover, on_the_way = until_accepted(client, within=BACK_WITHIN)
            assert victim.connections == 0 and sum(node.connections for node in nodes) == 1

            for node in nodes:
                node.down()
            refused = [timed_post(client) for _ in range(20)]
            assert all(code == 503 for code, _ in refused), refused
            assert client.get("/readyz").status_code == 503
            time.sleep(1.0)  # the publisher goes on looking for a node meanwhile

            victim.up()
            back, _ = until_accepted(client, within=BACK_WITHIN)
            assert client.get("/readyz").status_code == 200
        slowest_refusal = max([elapsed for _, elapsed in refused] + on_the_way)
        record_figures(FIGURES, "sender", failover_s=failover, back_after_outage_s=back, slowest_503_s=slowest_refusal)
        assert failover <= BACK_WITHIN, f"202 again {failover:.2f}s after the node was lost"
        assert back <= BACK_WITHIN, f"202 again {back:.2f}s after a node returned"
        assert slowest_refusal <= AT_ONCE, f"a 503 took {slowest_refusal:.2f}s"
        # Every 202 is a message in the queue: three accepted, none lost on the way.
        assert queue_depth(direct, "cola_sms") == 3
