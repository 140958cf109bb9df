"""Business hours in the company's zone: inside, after closing, closed days, DST transitions."""

from __future__ import annotations

from datetime import UTC, datetime

from zapflow.services.business_hours import is_open, next_opening

WEEKDAYS = {
    day: [["09:00", "12:00"], ["13:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_inside_hours_is_now() -> None:
    # Wednesday 2026-11-25 10:00 in São Paulo (UTC-3) is 13:00 UTC
    moment = utc(2026, 11, 25, 13, 0)
    assert is_open(moment, "America/Sao_Paulo", WEEKDAYS)
    assert next_opening(moment, "America/Sao_Paulo", WEEKDAYS) == moment


def test_lunch_break_and_evening_move_to_the_next_range() -> None:
    lunch = utc(2026, 11, 25, 15, 30)  # 12:30 local
    assert next_opening(lunch, "America/Sao_Paulo", WEEKDAYS) == utc(2026, 11, 25, 16, 0)
    evening = utc(2026, 11, 25, 23, 0)  # 20:00 local → Thursday 09:00 local
    assert next_opening(evening, "America/Sao_Paulo", WEEKDAYS) == utc(2026, 11, 26, 12, 0)


def test_weekend_moves_to_monday() -> None:
    saturday = utc(2026, 11, 28, 15, 0)
    assert next_opening(saturday, "America/Sao_Paulo", WEEKDAYS) == utc(2026, 11, 30, 12, 0)


def test_no_hours_means_always_open() -> None:
    moment = utc(2026, 11, 29, 3, 0)
    assert next_opening(moment, "Europe/Lisbon", {}) == moment


def test_spring_forward_keeps_the_local_opening_time() -> None:
    # New York moves from EST (UTC-5) to EDT (UTC-4) on Sunday 2026-03-08 at 02:00.
    friday_evening = utc(2026, 3, 6, 23, 30)  # 18:30 EST Friday
    monday = next_opening(friday_evening, "America/New_York", WEEKDAYS)
    assert monday == utc(2026, 3, 9, 13, 0)  # 09:00 EDT, not 09:00 EST


def test_an_opening_in_the_skipped_hour_opens_right_after_it() -> None:
    hours = {"sun": [["02:30", "05:00"]]}  # 02:30 does not exist on 2026-03-08 in New York
    saturday = utc(2026, 3, 7, 12, 0)
    assert next_opening(saturday, "America/New_York", hours) == utc(2026, 3, 8, 7, 30)  # 03:30 EDT


def test_fall_back_keeps_the_local_opening_time() -> None:
    # Lisbon moves from WEST (UTC+1) to WET (UTC+0) on Sunday 2026-10-25.
    saturday = utc(2026, 10, 24, 20, 0)
    assert next_opening(saturday, "Europe/Lisbon", WEEKDAYS) == utc(2026, 10, 26, 9, 0)
    friday_morning = utc(2026, 10, 23, 7, 0)  # 08:00 WEST → 09:00 WEST = 08:00 UTC
    assert next_opening(friday_morning, "Europe/Lisbon", WEEKDAYS) == utc(2026, 10, 23, 8, 0)
