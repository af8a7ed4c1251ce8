"""Quota counters: the arithmetic, and the SQL that checks and spends in one statement.

A counter is the four `Counter` columns of a token or group row. Spending is a single
conditional `UPDATE … SET used = <new>, period = <now> WHERE <new> <= quota RETURNING …`: the
database evaluates the condition on the row it locks, so concurrent spenders (threads, processes,
replicas) can never take more than the quota, and a new month resets the counter in that same
statement. There is never a read-then-write.

A monthly counter moves on to a newer month and never back. A check is stamped with its month
when it arrives; under load, or on a replica whose clock lags a little, one stamped just before
midnight can be spent after another replica's first spend of the new month. Taking the counter
back to the old month would forget the new month's uses and give the old one more than its
quota (tests/token_validator/test_scale_out.py); so the late check counts in the counter's
month, and its usage is recorded in that month (`counted_period`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, or_

from token_validator.models import Group, Token

Restriction = Literal["unlimited", "max_uses", "monthly"]
UNLIMITED: Restriction = "unlimited"
MAX_USES: Restriction = "max_uses"
MONTHLY: Restriction = "monthly"
RESTRICTIONS: tuple[Restriction, ...] = (UNLIMITED, MAX_USES, MONTHLY)
MAX_QUOTA = 1_000_000_000

CounterModel = type[Token] | type[Group]


@dataclass(frozen=True)
class CounterState:
    restriction: str
    quota: int | None
    used: int
    period: int

    def used_in(self, period: int) -> int:
        """Uses that count now: a monthly counter still holding an older month counts zero."""
        if self.restriction == MONTHLY and self.period < period:
            return 0
        return self.used

    def remaining(self, period: int) -> int | None:
        if self.restriction == UNLIMITED or self.quota is None:
            return None
        return max(0, self.quota - self.used_in(period))

    def exhausted_code(self) -> str:
        return "monthly_quota_exhausted" if self.restriction == MONTHLY else "usage_exhausted"


def state_of(row: Any) -> CounterState:
    return CounterState(row.restriction, row.quota, int(row.used), int(row.period))


def counted_period(spent: list[CounterState], period: int) -> int:
    """The month a use spent at `period` from the `spent` counters (their state after the spend)
    counts in: a monthly counter's, when it is already in a newer month, else `period`."""
    return max([period, *(state.period for state in spent if state.restriction == MONTHLY)])


def _stale(model: CounterModel, period: Any) -> ColumnElement[bool]:
    """A monthly counter still holding a month older than `period` (one holding a newer month is
    not: it is never taken back)."""
    return and_(model.restriction == MONTHLY, model.period < period)


def _period_after(model: CounterModel, period: Any) -> ColumnElement[Any]:
    return case((_stale(model, period), period), else_=model.period)


def _used_after(model: CounterModel, cost: Any, period: Any) -> ColumnElement[Any]:
    return case((_stale(model, period), cost), else_=model.used + cost)


def within_quota(model: CounterModel, cost: Any, period: Any) -> ColumnElement[bool]:
    """True when spending `cost` now keeps the counter within its quota. `cost` and `period` are
    values or bound parameters."""
    return or_(model.restriction == UNLIMITED, _used_after(model, cost, period) <= model.quota)


def spend_values(model: CounterModel, cost: Any, period: Any) -> dict[str, Any]:
    """SET clause: add `cost`, starting from zero when the row still counts an older month."""
    return {"used": _used_after(model, cost, period), "period": _period_after(model, period)}


def grant_values(model: CounterModel, uses: int, period: int) -> dict[str, Any]:
    """SET clause giving `uses` more uses in the current period (used may go below zero: credit)."""
    return {
        "used": case((_stale(model, period), -uses), else_=model.used - uses),
        "period": _period_after(model, period),
    }


def set_remaining_values(model: CounterModel, remaining: int, period: int) -> dict[str, Any]:
    return {"used": model.quota - remaining, "period": _period_after(model, period)}


def refundable(model: CounterModel, period: int) -> ColumnElement[bool]:
    """A refund gives back only to the period it was spent in; a new month already started clean."""
    return or_(model.restriction != MONTHLY, model.period == period)


@dataclass(frozen=True)
class Limit:
    """What a client is told about the counter that binds it (the one with the fewest uses left)."""

    limit: int
    remaining: int
    reset_at: datetime | None


def binding_limit(counters: list[CounterState], period: int, next_month: datetime) -> Limit | None:
    best: Limit | None = None
    for counter in counters:
        remaining = counter.remaining(period)
        if remaining is None or counter.quota is None:
            continue
        candidate = Limit(counter.quota, remaining, next_month if counter.restriction == MONTHLY else None)
        if best is None or candidate.remaining < best.remaining:
            best = candidate
    return best
