"""The scaling decision over sequences of readings, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from cartero_common.clock import FixedClock
from monitor.decision import Policy, ScalingDecision, State, decide, wanted

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Europe/Madrid skips an hour: UTC does not care
POLICY = Policy(threshold=10_000, minimum=1, maximum=10, stabilization=timedelta(seconds=60))
TICK = timedelta(seconds=10)


def run(readings: Iterable[int | None], *, policy: Policy = POLICY, running: int = 1) -> list[ScalingDecision]:
    """Feed one reading per tick (None = the source failed) and collect every decision."""
    clock = FixedClock(T0)
    state = State.initial(running, policy)
    decisions = []
    for messages in readings:
        decision = decide(state, messages, now=clock(), policy=policy)
        decisions.append(decision)
        state = decision.state
        clock.set(clock() + TICK)
    return decisions


def targets(decisions: list[ScalingDecision]) -> list[int]:
    return [d.target for d in decisions]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [(0, 1), (1, 1), (10_000, 1), (10_001, 2), (25_000, 3), (99_999, 10), (10**9, 10), (-5, 1)],
)
def test_one_consumer_per_threshold_within_bounds(messages: int, expected: int) -> None:
    assert wanted(messages, POLICY) == expected


def test_minimum_zero_allows_no_consumers() -> None:
    policy = Policy(threshold=100, minimum=0, maximum=3, stabilization=timedelta(0))
    assert wanted(0, policy) == 0
    assert targets(run([0, 150, 0], policy=policy, running=0)) == [0, 2, 0]


def test_invalid_policy_refused() -> None:
    with pytest.raises(ValueError):
        Policy(threshold=0, minimum=1, maximum=2, stabilization=timedelta(0))
    with pytest.raises(ValueError):
        Policy(threshold=10, minimum=3, maximum=2, stabilization=timedelta(0))


def test_initial_state_adopts_running_within_bounds() -> None:
    assert State.initial(0, POLICY).target == 1
    assert State.initial(4, POLICY).target == 4
    assert State.initial(40, POLICY).target == 10


def test_spike_scales_up_at_once_and_down_only_after_a_quiet_window() -> None:
    decisions = run([0, 95_000] + [0] * 9)
    assert targets(decisions) == [1, 10, 10, 10, 10, 10, 10, 1, 1, 1, 1]
    assert decisions[1].reason == "up"
    # The window is the last 60 s: the spike (t=10 s) has left it at t=70 s, and not before.
    assert decisions[6].reason == "stabilizing"
    assert decisions[7].reason == "down"


def test_scale_down_goes_to_the_largest_count_the_window_asked_for() -> None:
    # 10 → then readings asking for 4, 3, 2, …: after the window, the target is the window's
    # maximum (never below what the last minute needed), then follows it down as it slides.
    readings = [95_000] + [35_000, 25_000, 15_000, 5_000, 5_000, 5_000, 5_000, 5_000, 5_000, 5_000]
    got = targets(run(readings))
    assert got == [10, 10, 10, 10, 10, 10, 4, 3, 2, 1, 1]
    assert got == sorted(got, reverse=True)


def test_sawtooth_does_not_flap() -> None:
    # The backlog fills and empties every 20 s, faster than the 60 s window: scale up once, stay.
    decisions = run([25_000, 0] * 12)
    got = targets(decisions)
    assert got == [3] * 24
    assert sum(1 for a, b in zip(got, got[1:], strict=False) if a != b) == 0


def test_slow_ramp_only_ever_goes_up_and_tracks_the_backlog() -> None:
    readings = list(range(0, 120_001, 4_000))
    decisions = run(readings)
    got = targets(decisions)
    assert got == sorted(got)
    assert all(1 <= t <= 10 for t in got)
    assert got == [wanted(m, POLICY) for m in readings]  # up is never delayed
    assert got[-1] == 10


def test_slow_ramp_down_waits_a_window_at_every_level() -> None:
    # The backlog shrinks by 1,000 per 10 s tick from 50,000: each level is left only once the
    # whole previous minute asked for less.
    readings = list(range(50_000, -1, -1_000)) + [0] * 6
    decisions = run(readings, running=5)
    got = targets(decisions)
    assert got == sorted(got, reverse=True)
    for i, decision in enumerate(decisions):
        window = readings[max(0, i - 5) : i + 1]
        assert decision.target >= wanted(max(window), POLICY)
    assert got[-1] == 1


def test_source_outage_holds_and_blocks_scale_down_for_a_full_window() -> None:
    readings: list[int | None] = [25_000, None, None, None, 0, 0, 0, 0, 0, 0, 0]
    decisions = run(readings)
    assert targets(decisions) == [3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1]
    assert [d.reason for d in decisions[1:4]] == ["source_error"] * 3
    assert all(d.wanted is None for d in decisions[1:4])
    # The last failure was at t=30 s: the window (60 s) is free of it only at t=90 s.
    assert decisions[9].reason == "down"


def test_outage_at_start_holds_the_minimum() -> None:
    assert targets(run([None, None, 25_000], running=0)) == [1, 1, 3]


def test_outage_never_scales_up_or_down() -> None:
    decisions = run([None] * 20, running=4)
    assert targets(decisions) == [4] * 20
    assert {d.reason for d in decisions} == {"source_error"}


def test_no_scale_down_before_the_monitor_has_watched_a_whole_window() -> None:
    # A restarted monitor finds 5 running and an empty queue: it waits 60 s before trusting that.
    decisions = run([0] * 8, running=5)
    assert targets(decisions) == [5, 5, 5, 5, 5, 5, 1, 1]


def test_zero_stabilization_follows_the_backlog_both_ways() -> None:
    policy = Policy(threshold=10_000, minimum=1, maximum=10, stabilization=timedelta(0))
    assert targets(run([25_000, 5_000, 45_000, 0], policy=policy)) == [3, 1, 5, 1]


def test_up_during_stabilization_is_still_immediate() -> None:
    decisions = run([35_000, 0, 0, 55_000, 0])
    assert targets(decisions) == [4, 4, 4, 6, 6]
    assert decisions[3].reason == "up"
