"""Provider failover: an ordered list of providers, each behind its own circuit breaker.

One attempt at a message (one delivery off the queue) goes down the list:

- a provider whose circuit is open is skipped (not called);
- `TransientFailure` (timeout, refused connection, 5xx, SMTP 4xx) counts against that
  provider's breaker and the next one is tried, within the same attempt;
- `PermanentFailure` is raised at once: the message is at fault, not the provider, and another
  provider would refuse it too. The provider answered, so its breaker counts it as a success;
- the first provider to take the message ends the attempt: its name goes into the `consumido`
  event (`proveedor`);
- if none took it, `TransientFailure` naming what each said: the normal retry path.

When every circuit is open the one whose cool-down ends first is called anyway, rather than
failing the attempt without trying: a message is never dead-lettered by breakers alone, and a
single configured provider behaves as it did without one.

A breaker: closed → open after `failures` consecutive transient failures → half-open once
`cooldown` has passed, when one call (the probe) is let through: its success closes the
circuit, its failure opens it for another cool-down. Time comes from the injected clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Generic, TypeVar

from cartero_common.clock import Clock
from cartero_common.consume.outcomes import PermanentFailure, TransientFailure
from cartero_common.metrics import PROVIDER_ATTEMPTS, PROVIDER_CIRCUIT_STATE, PROVIDER_FAILOVERS

log = logging.getLogger(__name__)

P = TypeVar("P")


class CircuitState(IntEnum):
    """The value of the `provider_circuit_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5
    cooldown: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("a breaker opens after one failure at least")
        if self.cooldown <= timedelta(0):
            raise ValueError("a breaker's cool-down must be positive")


class CircuitBreaker:
    """One provider's breaker. Safe to share between threads; the consume loop calls it from one."""

    def __init__(self, policy: BreakerPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self.consecutive_failures = 0
        self.opened_at: datetime | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if self.clock() >= self.opened_at + self.policy.cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def gauge_value(self) -> float:
        return float(self.state)

    @property
    def reopens_at(self) -> datetime | None:
        """When an open circuit lets its probe through; None when closed."""
        return None if self.opened_at is None else self.opened_at + self.policy.cooldown

    def acquire(self) -> bool:
        """Whether the provider may be called now. Half-open lets one call through (the probe)
        until its result is recorded."""
        with self._lock:
            state = self.state
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def release(self) -> None:
        """Give the probe slot back without a verdict (the call raised something unexpected)."""
        with self._lock:
            self._probing = False

    def succeeded(self) -> None:
        with self._lock:
            self.consecutive_failures = 0
            self.opened_at = None
            self._probing = False

    def failed(self) -> bool:
        """Record a transient failure; True when this one opened the circuit (from closed, or a
        failed probe), not when it was open already (every circuit open: see `Failover`)."""
        with self._lock:
            was_open = self.state is CircuitState.OPEN
            self.consecutive_failures += 1
            self._probing = False
            if self.opened_at is not None or self.consecutive_failures >= self.policy.failures:
                self.opened_at = self.clock()  # a new cool-down from now
                return not was_open
            return False


@dataclass
class _Entry(Generic[P]):
    name: str
    provider: P
    breaker: CircuitBreaker


class Failover(Generic[P]):
    """`providers` as (name, provider) in the order to try them; `name` is the metric label and
    the event's `proveedor`, so it must be unique and hold no secret."""

    def __init__(
        self, providers: Sequence[tuple[str, P]], *, service: str, policy: BreakerPolicy, clock: Clock
    ) -> None:
        if not providers:
            raise ValueError("failover needs one provider at least")
        names = [name for name, _ in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique: {names}")
        self.service = service
        self.entries = [_Entry(name, provider, CircuitBreaker(policy, clock)) for name, provider in providers]
        for entry in self.entries:
            # Read at scrape time, so an open circuit shows half-open as soon as its cool-down ends.
            PROVIDER_CIRCUIT_STATE.labels(service, entry.name).set_function(entry.breaker.gauge_value)
        self._failovers = PROVIDER_FAILOVERS.labels(service)

    @property
    def providers(self) -> list[P]:
        return [entry.provider for entry in self.entries]

    def breaker(self, name: str) -> CircuitBreaker:
        return next(entry.breaker for entry in self.entries if entry.name == name)

    def send(self, call: Callable[[P], object]) -> str:
        """`call(provider)` on each provider in turn until one returns; the name of that one."""
        forced = self._first_to_reopen() if all(e.breaker.state is CircuitState.OPEN for e in self.entries) else None
        said: list[str] = []
        for index, entry in enumerate(self.entries):
            if entry is not forced and not entry.breaker.acquire():
                self._count(entry, "skipped_open")
                said.append(f"{entry.name}: circuit open")
                continue
            try:
                call(entry.provider)
            except TransientFailure as failure:
                self._count(entry, "transient")
                said.append(f"{entry.name}: {failure.reason}")
                if entry.breaker.failed():
                    log.warning(
                        "provider circuit opened",
                        extra={
                            "service": self.service,
                            "provider": entry.name,
                            "consecutive_failures": entry.breaker.consecutive_failures,
                            "reason": failure.reason,
                        },
                    )
                continue
            except PermanentFailure:
                self._count(entry, "permanent")
                entry.breaker.succeeded()
                raise
            except BaseException:
                # A provider bug: no verdict on the provider, but the probe slot must not stay taken.
                entry.breaker.release()
                raise
            self._count(entry, "sent")
            entry.breaker.succeeded()
            if index > 0:
                self._failovers.inc()
            if said:
                log.info(
                    "sent after failover",
                    extra={"service": self.service, "provider": entry.name, "passed": "; ".join(said)},
                )
            return entry.name
        raise TransientFailure("no provider took it: " + "; ".join(said))

    def _first_to_reopen(self) -> _Entry[P]:
        reopening = [(e.breaker.reopens_at, i) for i, e in enumerate(self.entries) if e.breaker.reopens_at]
        return self.entries[min(reopening)[1]]

    def _count(self, entry: _Entry[P], outcome: str) -> None:
        PROVIDER_ATTEMPTS.labels(self.service, entry.name, outcome).inc()
