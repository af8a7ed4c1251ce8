"""How many consumers a queue should have: a pure function of the readings, the time and the policy.

desired = clamp(ceil(messages / threshold), min, max), with `messages` = ready + unacknowledged.
Up at once: a backlog only grows while we wait. Down only when every reading over the
stabilization window asked for fewer, and then straight to the largest count any of those
readings asked for (the window's maximum, as the Kubernetes HPA does): never below what the
recent past needed, and one decision instead of a staircase of them.
A failed reading holds the count, and stays in the window as "unknown", so the monitor scales
down only after a whole window of good readings.

Ref: https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#stabilization-window
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal


@dataclass(frozen=True)
class Policy:
    threshold: int
    minimum: int
    maximum: int
    stabilization: timedelta

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.minimum < 0 or self.maximum < self.minimum:
            raise ValueError(f"invalid scaling policy: {self}")


@dataclass(frozen=True)
class Reading:
    """What one tick asked for; `wanted` is None when the depth source failed."""

    at: datetime
    wanted: int | None


@dataclass(frozen=True)
class State:
    """What the decision remembers between ticks; start from `State.initial`."""

    target: int
    first_reading_at: datetime | None = None
    window: tuple[Reading, ...] = field(default=())

    @classmethod
    def initial(cls, running: int, policy: Policy) -> State:
        """Adopt what is already running, within bounds (`min` holds even before a good reading)."""
        return cls(target=clamp(running, policy))


Reason = Literal["up", "down", "steady", "stabilizing", "source_error"]


@dataclass(frozen=True)
class ScalingDecision:
    target: int
    wanted: int | None
    reason: Reason
    state: State


def clamp(count: int, policy: Policy) -> int:
    return max(policy.minimum, min(policy.maximum, count))


def wanted(messages: int, policy: Policy) -> int:
    """Consumers for `messages` waiting or in flight: one per `threshold`, within bounds."""
    return clamp(math.ceil(max(messages, 0) / policy.threshold), policy)


def decide(state: State, messages: int | None, *, now: datetime, policy: Policy) -> ScalingDecision:
    """The next target for one reading (`messages`, or None when the source failed) at `now`."""
    reading = Reading(now, None if messages is None else wanted(messages, policy))
    start = now - policy.stabilization
    window = (*(r for r in state.window if r.at > start), reading)
    first = state.first_reading_at or now
    remembered = State(state.target, first, window)

    if reading.wanted is None:
        return ScalingDecision(state.target, None, "source_error", remembered)
    if reading.wanted > state.target:
        return _to(reading.wanted, reading.wanted, "up", remembered)
    if reading.wanted == state.target:
        return ScalingDecision(state.target, reading.wanted, "steady", remembered)

    # Fewer wanted now: only if the whole window was watched and every reading in it wanted fewer.
    watched_long_enough = now - first >= policy.stabilization
    asked = [r.wanted for r in window]
    if watched_long_enough and None not in asked:
        highest = max(w for w in asked if w is not None)
        if highest < state.target:
            return _to(highest, reading.wanted, "down", remembered)
    return ScalingDecision(state.target, reading.wanted, "stabilizing", remembered)


def _to(target: int, wanted_now: int, reason: Reason, state: State) -> ScalingDecision:
    return ScalingDecision(target, wanted_now, reason, State(target, state.first_reading_at, state.window))
