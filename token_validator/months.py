"""Calendar-month windows in a time zone: where a monthly quota starts, resets and how long until then.

Pure arithmetic on aware datetimes (zoneinfo), so 28/29/30/31-day months and DST changes need no
special cases: a window is [first instant of the month, first instant of the next month) in the
zone, and a period is named by its number `YYYYMM`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @property
    def period(self) -> int:
        """`YYYYMM`, how counters remember which month they count."""
        return self.year * 100 + self.month

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def start(self, zone: ZoneInfo) -> datetime:
        """The first instant of the month in `zone` (midnight never falls in a DST gap in the zones
        we know of; zoneinfo resolves it anyway)."""
        return datetime(self.year, self.month, 1, tzinfo=zone)

    def days(self) -> list[date]:
        first = date(self.year, self.month, 1)
        following = self.next()
        count = (date(following.year, following.month, 1) - first).days
        return [date(self.year, self.month, day) for day in range(1, count + 1)]

    @classmethod
    def parse(cls, label: str) -> Month:
        """`YYYY-MM` → Month; ValueError otherwise."""
        year, sep, month = label.partition("-")
        if not sep or len(year) != 4 or len(month) != 2 or not (year.isdigit() and month.isdigit()):
            raise ValueError("expected YYYY-MM")
        value = cls(int(year), int(month))
        if not 1 <= value.month <= 12 or value.year < 1970:
            raise ValueError("expected YYYY-MM with a month 01-12")
        return value

    @classmethod
    def from_period(cls, period: int) -> Month:
        return cls(period // 100, period % 100)


def month_of(instant: datetime, zone: ZoneInfo) -> Month:
    local = instant.astimezone(zone)
    return Month(local.year, local.month)


def local_day(instant: datetime, zone: ZoneInfo) -> str:
    """The calendar day of `instant` in `zone`, `YYYY-MM-DD` (how usage is grouped by day)."""
    return instant.astimezone(zone).date().isoformat()


def reset_at(instant: datetime, zone: ZoneInfo) -> datetime:
    """When the monthly window holding `instant` ends: the first instant of the next month in `zone`."""
    return month_of(instant, zone).next().start(zone)


def seconds_until(later: datetime, now: datetime) -> int:
    """Whole seconds from `now` to `later`, rounded up (a client that waits this long is past it)."""
    # In UTC: two datetimes sharing a tzinfo subtract as wall-clock times, blind to a DST change.
    return max(0, math.ceil((later.astimezone(UTC) - now.astimezone(UTC)).total_seconds()))


def last_months(instant: datetime, zone: ZoneInfo, count: int) -> list[Month]:
    """The `count` months ending with the one holding `instant`, oldest first."""
    months = [month_of(instant, zone)]
    while len(months) < count:
        months.append(months[-1].previous())
    return list(reversed(months))
