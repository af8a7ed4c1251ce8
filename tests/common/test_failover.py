"""The circuit breaker and the failover over an ordered list of providers, on a clock the test
moves (no sleeps). The providers are plain functions: what a real gateway does is in
tests/consumer_sms and tests/consumer_email."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from cartero_common.clock import FixedClock
from cartero_common.consume import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
    Failover,
    PermanentFailure,
    TransientFailure,
)

START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
POLICY = BreakerPolicy(failures=3, cooldown=timedelta(seconds=30))
_services = (f"test_failover_{n}" for n in itertools.count())


def state(breaker: CircuitBreaker) -> CircuitState:
    """Read afresh each time (the clock moves it), which a type checker cannot know of a property."""
    return breaker.state


def later(clock: FixedClock, seconds: float) -> None:
    clock.set(clock() + timedelta(seconds=seconds))


def test_a_breaker_opens_after_n_consecutive_failures_and_a_success_resets_the_count() -> None:
    clock = FixedClock(START)
    breaker = CircuitBreaker(POLICY, clock)
    assert breaker.failed() is False and breaker.failed() is False
    breaker.succeeded()  # not consecutive any more
    assert breaker.failed() is False and breaker.failed() is False
    assert state(breaker) is CircuitState.CLOSED and breaker.acquire()
    assert breaker.failed() is True  # the third in a row
    assert state(breaker) is CircuitState.OPEN
    assert breaker.reopens_at == START + timedelta(seconds=30)
    assert not breaker.acquire()


def test_after_the_cool_down_one_probe_goes_through_and_its_result_decides() -> None:
    clock = FixedClock(START)
    breaker = CircuitBreaker(POLICY, clock)
    for _ in range(3):
        breaker.failed()
    later(clock, 29.9)
    assert state(breaker) is CircuitState.OPEN and not breaker.acquire()
    later(clock, 0.1)
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.acquire() is True  # the probe
    assert breaker.acquire() is False  # and only one, until its result is in
    assert breaker.failed() is True  # the probe failed: open for another whole cool-down
    assert state(breaker) is CircuitState.OPEN and breaker.reopens_at == clock() + timedelta(seconds=30)
    later(clock, 30)
    assert breaker.acquire() is True
    breaker.succeeded()  # the probe worked: closed, the count from zero
    assert state(breaker) is CircuitState.CLOSED and breaker.consecutive_failures == 0
    assert breaker.acquire() and breaker.acquire()


def test_a_probe_that_raises_something_unexpected_gives_its_slot_back() -> None:
    clock = FixedClock(START)
    breaker = CircuitBreaker(BreakerPolicy(failures=1, cooldown=timedelta(seconds=1)), clock)
    breaker.failed()
    later(clock, 1)
    assert breaker.acquire()
    breaker.release()
    assert state(breaker) is CircuitState.HALF_OPEN and breaker.acquire()


def test_the_gauge_values() -> None:
    assert [int(s) for s in (CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN)] == [0, 1, 2]


def test_a_policy_needs_a_positive_count_and_cool_down() -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(failures=0)
    with pytest.raises(ValueError):
        BreakerPolicy(cooldown=timedelta(0))


class Provider:
    """Answers with what `script` says for each call: None (taken) or a failure to raise."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.calls = 0

    def send(self) -> None:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome


def failover_of(clock: FixedClock, **providers: Provider) -> tuple[Failover[Provider], str]:
    service = next(_services)
    return Failover(list(providers.items()), service=service, policy=POLICY, clock=clock), service


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def send(failover: Failover[Provider]) -> str:
    return failover.send(lambda provider: provider.send())


def down() -> TransientFailure:
    return TransientFailure("connection refused")


def test_a_transient_failure_tries_the_next_provider_in_the_same_attempt() -> None:
    clock = FixedClock(START)
    a, b, c = Provider(down()), Provider(), Provider()
    failover, service = failover_of(clock, a=a, b=b, c=c)
    assert send(failover) == "b"
    assert (a.calls, b.calls, c.calls) == (1, 1, 0)
    assert send(failover) == "a"  # one failure does not open a's circuit; a is first again
    assert metric("provider_attempts_total", service=service, provider="a", outcome="transient") == 1
    assert metric("provider_attempts_total", service=service, provider="a", outcome="sent") == 1
    assert metric("provider_attempts_total", service=service, provider="b", outcome="sent") == 1
    assert metric("provider_failovers_total", service=service) == 1


def test_a_permanent_failure_is_raised_at_once_without_trying_the_next() -> None:
    clock = FixedClock(START)
    a, b = Provider(PermanentFailure("gateway answered 400")), Provider()
    failover, service = failover_of(clock, a=a, b=b)
    with pytest.raises(PermanentFailure, match="400"):
        send(failover)
    assert (a.calls, b.calls) == (1, 0)
    assert metric("provider_attempts_total", service=service, provider="a", outcome="permanent") == 1
    assert state(failover.breaker("a")) is CircuitState.CLOSED  # it answered: not a provider outage


def test_when_every_provider_fails_the_attempt_fails_transiently_naming_what_each_said() -> None:
    clock = FixedClock(START)
    a, b = Provider(TransientFailure("connection refused")), Provider(TransientFailure("answered 503"))
    failover, service = failover_of(clock, a=a, b=b)
    with pytest.raises(TransientFailure) as raised:
        send(failover)
    assert raised.value.reason == "no provider took it: a: connection refused; b: answered 503"
    assert metric("provider_failovers_total", service=service) == 0


def test_an_open_circuit_is_skipped_then_probed_after_the_cool_down() -> None:
    clock = FixedClock(START)
    a, b = Provider(down(), down(), down(), down()), Provider()
    failover, service = failover_of(clock, a=a, b=b)
    state = {"service": service, "provider": "a"}
    for _ in range(3):
        assert send(failover) == "b"
    assert metric("provider_circuit_state", **state) == 2
    assert metric("provider_circuit_state", service=service, provider="b") == 0
    for _ in range(5):
        assert send(failover) == "b"
    assert a.calls == 3  # not called while open
    assert metric("provider_attempts_total", **state, outcome="skipped_open") == 5
    later(clock, 30)
    # The gauge is read at scrape time: half-open as soon as the cool-down is over.
    assert metric("provider_circuit_state", **state) == 1
    assert send(failover) == "b"  # the probe failed (a's fourth scripted failure) ...
    assert a.calls == 4
    assert metric("provider_circuit_state", **state) == 2  # ... so open again
    later(clock, 30)
    assert send(failover) == "a"  # this probe works: closed
    assert metric("provider_circuit_state", **state) == 0
    assert metric("provider_failovers_total", service=service) == 9


def test_when_every_circuit_is_open_the_one_reopening_first_is_tried_anyway() -> None:
    clock = FixedClock(START)
    a, b = Provider(), Provider()
    failover, _ = failover_of(clock, a=a, b=b)
    for _ in range(3):
        failover.breaker("b").failed()  # b opens first ...
    later(clock, 5)
    for _ in range(3):
        failover.breaker("a").failed()  # ... a five seconds later
    later(clock, 1)
    assert state(failover.breaker("a")) is CircuitState.OPEN and state(failover.breaker("b")) is CircuitState.OPEN
    # Both open: rather than give up without trying, b (whose cool-down ends first) is called,
    # although a comes first in the list.
    assert send(failover) == "b"
    assert (a.calls, b.calls) == (0, 1)
    assert state(failover.breaker("b")) is CircuitState.CLOSED
    assert state(failover.breaker("a")) is CircuitState.OPEN


def test_one_provider_alone_is_always_tried_even_with_its_circuit_open() -> None:
    clock = FixedClock(START)
    only = Provider(*[down()] * 5)
    failover, service = failover_of(clock, only=only)
    for _ in range(5):
        with pytest.raises(TransientFailure, match="only: connection refused"):
            send(failover)
    assert only.calls == 5 and state(failover.breaker("only")) is CircuitState.OPEN
    assert send(failover) == "only"
    assert metric("provider_attempts_total", service=service, provider="only", outcome="skipped_open") == 0


def test_a_failure_while_open_restarts_the_cool_down_but_does_not_count_as_opening() -> None:
    clock = FixedClock(START)
    breaker = CircuitBreaker(POLICY, clock)
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    later(clock, 10)
    assert breaker.failed() is False  # a call made although open (every circuit open)
    assert breaker.reopens_at == clock() + timedelta(seconds=30)


def test_a_provider_bug_propagates_and_leaves_no_probe_slot_taken() -> None:
    clock = FixedClock(START)
    calls: list[str] = []

    def call(name: str) -> Callable[[], None]:
        def run() -> None:
            calls.append(name)
            raise RuntimeError("bug")

        return run

    failover = Failover([("a", call("a"))], service=next(_services), policy=POLICY, clock=clock)
    with pytest.raises(RuntimeError):
        failover.send(lambda provider: provider())
    assert state(failover.breaker("a")) is CircuitState.CLOSED and failover.breaker("a").acquire()


def test_names_must_be_unique_and_the_list_not_empty() -> None:
    clock = FixedClock(START)
    with pytest.raises(ValueError, match="unique"):
        Failover([("a", Provider()), ("a", Provider())], service="x", policy=POLICY, clock=clock)
    with pytest.raises(ValueError, match="one provider"):
        Failover([], service="x", policy=POLICY, clock=clock)
