"""One clock for the whole suite, so tests can set the time (month windows, `fecha`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]
"""Returns the current instant, timezone-aware."""

FECHA_FORMAT = "%Y-%m-%d %H:%M:%S"


def system_clock() -> datetime:
    return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move; for tests."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.now = now


def fecha(instant: datetime, timezone: str) -> str:
    """The seed's `fecha`: local wall time in `timezone`, `YYYY-MM-DD HH:MM:SS`."""
    return instant.astimezone(ZoneInfo(timezone)).strftime(FECHA_FORMAT)
