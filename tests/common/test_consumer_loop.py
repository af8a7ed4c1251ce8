"""The shared consume loop against the real broker: topology, graceful stop, reconnect,
and what happens when a handler blows up."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from urllib.parse import quote

import pytest

from cartero_common.amqp import RetryPolicy, parse_delays
from cartero_common.consume import ConsumerLoop, Delivery, Done, Outcome
from tests.consumers import FAST_DELAYS, close_connections, connections, events, publish, running, sms, vhost_of
from tests.support import isolated_vhost, queue_depth, rabbit_api, wait_until

POLICY = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))


class Recorder:
    """A handler that notes every id it sees, optionally slowly, optionally failing first."""

    def __init__(self, *, seconds: float = 0.0, explode_first: int = 0) -> None:
        self.seen: list[str] = []
        self.started = threading.Event()
        self.seconds = seconds
        self.explode = explode_first

    def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        self.started.set()
        if self.explode > 0:
            self.explode -= 1
            raise RuntimeError("database is on fire")
        time.sleep(self.seconds)
        found = [json.loads(d.body) for d in batch]
        self.seen.extend(m["id"] for m in found)
        return [Done(m) for m in found]


@pytest.fixture
def url() -> Iterator[str]:
    with isolated_vhost("cartero-loop") as found:
        yield found


def make_loop(url: str, handler: Recorder, **kwargs: object) -> ConsumerLoop:
    name = f"test-loop-{uuid.uuid4().hex[:8]}"
    return ConsumerLoop(url=url, queue="cola_sms", handler=handler, policy=POLICY, name=name, **kwargs)  # type: ignore[arg-type]


def test_shared_queues_stay_argument_free_and_ours_carry_the_arguments(url: str) -> None:
    with running(make_loop(url, Recorder())):
        pass
    vhost = quote(vhost_of(url), safe="")
    queues = {q["name"]: q for q in rabbit_api("GET", f"/queues/{vhost}").json()}
    assert set(queues) == {"cola_sms", "logs", "cola_sms.retry.200ms", "cola_sms.retry.400ms", "cola_sms.dlq"}
    for shared in ("cola_sms", "logs", "cola_sms.dlq"):
        assert queues[shared]["arguments"] == {} and queues[shared]["durable"] is True
    assert queues["cola_sms.retry.400ms"]["arguments"] == {
        "x-message-ttl": 400,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "cola_sms",
    }


def test_stop_finishes_the_message_in_hand_and_returns_the_rest(url: str) -> None:
    handler = Recorder(seconds=0.5)
    loop = make_loop(url, handler, prefetch=10)
    for n in range(5):
        publish(url, "cola_sms", sms(f"m{n}"))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert handler.started.wait(10)
    loop.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert handler.seen == ["m0"]
    assert queue_depth(url, "cola_sms") == 4  # prefetched, never started: back in the queue
    assert [e["id"] for e in events(url)] == ["m0"]


def test_reconnects_after_the_broker_drops_the_connection_and_loses_nothing(url: str) -> None:
    handler = Recorder(seconds=0.05)
    loop = make_loop(url, handler, prefetch=5)
    with running(loop):
        wait_until(lambda: connections(url, loop.name), timeout=15, what="the connection listed")
        for n in range(40):
            publish(url, "cola_sms", sms(f"m{n}"))
        wait_until(lambda: len(handler.seen) >= 5, timeout=10, what="some progress")
        assert close_connections(url, loop.name) == 1
        assert len(handler.seen) < 40  # the drop happened mid-stream
        wait_until(lambda: not loop.connected.is_set(), timeout=5, what="the drop noticed")
        wait_until(lambda: loop.connected.is_set(), timeout=15, what="reconnected")
        wait_until(lambda: {f"m{n}" for n in range(40)} <= set(handler.seen), timeout=20, what="all 40 handled")
        wait_until(lambda: queue_depth(url, "cola_sms") == 0, timeout=10, what="queue empty")
    assert queue_depth(url, "cola_sms.dlq") == 0


def test_a_handler_that_raises_is_retried_not_fatal(url: str) -> None:
    handler = Recorder(explode_first=1)
    with running(make_loop(url, handler)):
        publish(url, "cola_sms", sms("m1"))
        wait_until(lambda: handler.seen == ["m1"], timeout=10, what="handled on the retry")
        wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
    found = events(url)
    assert [e["evento"] for e in found] == ["reintento", "consumido"]
    assert "database is on fire" in found[0]["motivo"]


def test_each_batch_is_on_its_way_to_the_broker_before_the_next_is_handled(url: str) -> None:
    """A batch's events leave while later batches are handled, so its ack is not held back by
    work that came after it (the prefetch window would stay full of finished messages)."""
    seen_before: dict[str, int] = {}

    class Watcher(Recorder):
        def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
            message_id = json.loads(batch[0].body)["id"]
            if message_id != "m0":
                # The I/O loop waits for this handler: m0's event can only be on `logs` if it was
                # written before this batch started.
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: queue_depth(url, "logs") >= 1, timeout=5, what="m0's event")
            seen_before[message_id] = queue_depth(url, "logs")
            return super().__call__(batch)

    for n in range(2):
        publish(url, "cola_sms", sms(f"m{n}"))
    handler = Watcher()
    with running(make_loop(url, handler, prefetch=10, batch_size=1)):
        wait_until(lambda: queue_depth(url, "logs") == 2, timeout=10, what="two events")
    assert handler.seen == ["m0", "m1"]
    assert seen_before == {"m0": 0, "m1": 1}
