"""Clients that know every node: the consume loop and the blocking clients given an `AMQP_URL`
list fail over when their node is lost and are back within a second of a node being there.

Three proxies to the one real broker stand for three nodes (`tests.tcp_proxy`: `down` closes
every connection through one and refuses new ones, as a node that died does). The cluster itself,
quorum queues and a real node loss under load, is `tests/cluster` (`make test-cluster`)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence

import pytest

from cartero_common.amqp import connect
from cartero_common.consume import ConsumerLoop, Delivery, Done, Outcome
from tests.consumers import publish, running, sms
from tests.support import ROOT, record_figures, wait_until
from tests.tcp_proxy import Proxy, proxy_nodes

pytestmark = pytest.mark.integration

# How soon a client must be connected again once a node is there (the scale-out issue: 1 s).
BACK_WITHIN = 1.0
FIGURES = ROOT / "test-artifacts" / "broker-failover.json"


def serving(nodes: Sequence[Proxy]) -> list[Proxy]:
    return [node for node in nodes if node.connections]


class Seen:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        found = [json.loads(d.body) for d in batch]
        with self.lock:
            self.ids.extend(m["id"] for m in found)
        return [Done(m) for m in found]


def test_the_consume_loop_moves_to_another_node_and_back_to_one_that_returns() -> None:
    with proxy_nodes("cartero-failover") as (nodes, urls, direct):
        seen = Seen()
        loop = ConsumerLoop(url=urls, queue="cola_sms", handler=seen, name=f"failover-{uuid.uuid4().hex[:8]}")
        with running(loop):
            publish(direct, "cola_sms", sms("before"))
            wait_until(lambda: "before" in seen.ids, timeout=10, what="a message before the loss")
            (victim,) = serving(nodes)

            lost = time.monotonic()
            victim.down()
            wait_until(lambda: not loop.connected.is_set(), timeout=5, interval=0.005, what="the loss noticed")
            wait_until(loop.connected.is_set, timeout=5, interval=0.005, what="consuming on another node")
            failover = time.monotonic() - lost
            assert serving(nodes) and victim not in serving(nodes)
            publish(direct, "cola_sms", sms("after"))
            wait_until(lambda: "after" in seen.ids, timeout=10, what="a message after the failover")

            for node in nodes:
                node.down()
            wait_until(lambda: not loop.connected.is_set(), timeout=5, interval=0.005, what="every node gone")
            publish(direct, "cola_sms", sms("while-down"))
            time.sleep(3.0)  # long enough for the loop's pause between rounds to reach its ceiling
            assert not loop.connected.is_set()
            back = time.monotonic()
            victim.up()
            wait_until(loop.connected.is_set, timeout=5, interval=0.005, what="consuming on the node that returned")
            returned = time.monotonic() - back
            wait_until(lambda: "while-down" in seen.ids, timeout=10, what="what was queued meanwhile")
        record_figures(FIGURES, "consumer", failover_s=failover, back_after_outage_s=returned)
        assert failover <= BACK_WITHIN, f"consuming again {failover:.2f}s after the loss"
        assert returned <= BACK_WITHIN, f"consuming again {returned:.2f}s after a node returned"
        # Each at least once; a delivery whose ack the lost node never got comes again (the
        # consumers' dedupe ledger absorbs that, tests/cluster counts it).
        assert set(seen.ids) == {"after", "before", "while-down"}


def test_a_blocking_client_connects_to_whichever_node_is_there() -> None:
    with proxy_nodes("cartero-failover") as (nodes, urls, _):
        for up in range(3):
            for index, node in enumerate(nodes):
                (node.up if index == up else node.down)()
            for _ in range(6):  # each from a random first node: the dead ones are skipped
                connection = connect(urls, timeout=2.0)
                try:
                    assert connection.is_open
                    assert [n.connections for n in nodes] == [int(i == up) for i in range(3)]
                finally:
                    connection.close()
                wait_until(lambda: not any(n.connections for n in nodes), timeout=5, what="the connection closed")
