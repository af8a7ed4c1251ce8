"""Month windows in a time zone: the pure arithmetic behind monthly quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from token_validator.months import Month, last_months, local_day, month_of, reset_at, seconds_until

MADRID = ZoneInfo("Europe/Madrid")


def test_last_second_of_january_and_first_of_february_in_madrid() -> None:
    before = datetime(2026, 1, 31, 23, 59, 59, tzinfo=MADRID)
    after = before + timedelta(seconds=1)
    assert month_of(before, MADRID).period == 202601 and month_of(after, MADRID).period == 202602
    assert reset_at(before, MADRID) == datetime(2026, 2, 1, tzinfo=MADRID)
    assert seconds_until(reset_at(before, MADRID), before) == 1
    # The same instants in UTC are still January 31st: the zone decides, not UTC.
    assert before.astimezone(UTC).month == 1 and after.astimezone(UTC).day == 31


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [(2024, 2, 29), (2025, 2, 28), (2000, 2, 29), (2100, 2, 28), (2026, 4, 30), (2026, 12, 31)],
)
def test_month_lengths_and_leap_years(year: int, month: int, days: int) -> None:
    assert len(Month(year, month).days()) == days
    last = datetime(year, month, days, 23, 59, 59, tzinfo=MADRID)
    assert seconds_until(reset_at(last, MADRID), last) == 1


def test_march_has_an_hour_less_and_october_an_hour_more_in_madrid() -> None:
    # DST starts on the last Sunday of March (29 March 2026) and ends on 25 October 2026.
    march = datetime(2026, 3, 1, tzinfo=MADRID)
    assert seconds_until(reset_at(march, MADRID), march) == 31 * 86400 - 3600
    october = datetime(2026, 10, 1, tzinfo=MADRID)
    assert seconds_until(reset_at(october, MADRID), october) == 31 * 86400 + 3600
    on_the_change = datetime(2026, 3, 29, 1, 59, 59, tzinfo=MADRID)
    assert reset_at(on_the_change, MADRID).isoformat() == "2026-04-01T00:00:00+02:00"
    assert seconds_until(reset_at(on_the_change, MADRID), on_the_change) == (2 * 86400 + 22 * 3600 + 1) - 3600


def test_december_rolls_into_the_next_year() -> None:
    new_year_eve = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)  # already 2027 in Madrid
    assert month_of(new_year_eve, MADRID) == Month(2027, 1)
    assert local_day(new_year_eve, MADRID) == "2027-01-01"
    assert reset_at(datetime(2026, 12, 15, tzinfo=MADRID), MADRID) == datetime(2027, 1, 1, tzinfo=MADRID)


def test_labels_parse_and_windows() -> None:
    assert Month.parse("2026-03").label == "2026-03"
    for bad in ("2026-13", "2026-3", "26-03", "2026/03", "abcd-ef", "1969-12"):
        with pytest.raises(ValueError):
            Month.parse(bad)
    months = last_months(datetime(2026, 2, 10, tzinfo=MADRID), MADRID, 12)
    assert [m.label for m in (months[0], months[-1])] == ["2025-03", "2026-02"] and len(months) == 12
    assert seconds_until(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)) == 0
