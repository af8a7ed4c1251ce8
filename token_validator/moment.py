"""The instant a decision is made, with everything derived from it in TIMEZONE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from token_validator.months import local_day, month_of, reset_at, seconds_until


@dataclass(frozen=True)
class Moment:
    now: datetime  # UTC: what is stored and compared in the database
    period: int  # YYYYMM of the month holding `now` in the zone
    day: str  # YYYY-MM-DD in the zone
    next_month: datetime  # first instant of the next month, in the zone

    @classmethod
    def at(cls, instant: datetime, zone: ZoneInfo) -> Moment:
        return cls(
            now=instant.astimezone(UTC),
            period=month_of(instant, zone).period,
            day=local_day(instant, zone),
            next_month=reset_at(instant, zone),
        )

    def seconds_to(self, later: datetime | None) -> int | None:
        return None if later is None else seconds_until(later, self.now)


def as_utc(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite are naive (stored in UTC); from PostgreSQL, aware."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
