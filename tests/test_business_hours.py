"""Business hours in the company's zone: inside, after closing, closed days, DST transitions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from zapflow.services.business_hours import (
    add_business_time,
    business_time_between,
    is_open,
    next_opening,
)

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


# --- business time, as SLA targets count it ------------------------------------------------


def test_a_target_past_closing_runs_on_the_next_morning() -> None:
    wednesday = utc(2026, 11, 25, 20, 30)  # 17:30 in São Paulo, half an hour before closing
    due = add_business_time(wednesday, timedelta(hours=1), "America/Sao_Paulo", WEEKDAYS)
    assert due == utc(2026, 11, 26, 12, 30)  # 09:30 Thursday
    assert business_time_between(wednesday, due, "America/Sao_Paulo", WEEKDAYS) == timedelta(
        hours=1
    )


def test_a_target_over_the_weekend_and_the_lunch_break() -> None:
    friday = utc(2026, 11, 27, 20, 0)  # 17:00 Friday
    due = add_business_time(friday, timedelta(hours=4), "America/Sao_Paulo", WEEKDAYS)
    assert due == utc(2026, 11, 30, 15, 0)  # 1 h Friday, 09:00-12:00 Monday: due 12:00
    five = add_business_time(friday, timedelta(hours=5), "America/Sao_Paulo", WEEKDAYS)
    assert five == utc(2026, 11, 30, 17, 0)  # lunch skipped: 14:00 Monday
    saturday, sunday = utc(2026, 11, 28, 12, 0), utc(2026, 11, 29, 23, 0)
    assert business_time_between(saturday, sunday, "America/Sao_Paulo", WEEKDAYS) == timedelta(0)


def test_a_holiday_is_closed_all_day() -> None:
    friday = utc(2026, 11, 27, 20, 0)
    holidays = {date(2026, 11, 30)}
    due = add_business_time(friday, timedelta(hours=2), "America/Sao_Paulo", WEEKDAYS, holidays)
    assert due == utc(2026, 12, 1, 13, 0)  # Tuesday 10:00


def test_no_hours_counts_every_second() -> None:
    start = utc(2026, 11, 29, 3, 0)
    assert add_business_time(start, timedelta(seconds=5), "UTC", {}) == start + timedelta(seconds=5)
    assert business_time_between(start, start + timedelta(days=2), "UTC", {}) == timedelta(days=2)
    assert business_time_between(start, start - timedelta(1), "UTC", {}) == timedelta(0)


def test_sao_paulo_historic_dst_start_over_a_weekend() -> None:
    # Brazil's last DST began on Sunday 2018-11-04 at 00:00 (UTC-3 → UTC-2).
    friday = utc(2018, 11, 2, 20, 0)  # 17:00 BRT
    due = add_business_time(friday, timedelta(hours=2), "America/Sao_Paulo", WEEKDAYS)
    assert due == utc(2018, 11, 5, 12, 0)  # 10:00 BRST Monday, not 10:00 BRT
    assert business_time_between(friday, due, "America/Sao_Paulo", WEEKDAYS) == timedelta(hours=2)


def test_a_day_open_across_a_dst_change_counts_the_hours_that_passed() -> None:
    all_sunday = {"sun": [["00:00", "23:59"]]}
    before, after = utc(2018, 11, 3, 12, 0), utc(2018, 11, 5, 12, 0)
    # 2018-11-04 in São Paulo: midnight does not exist, the day opens at 01:00 (an hour short)
    short = business_time_between(before, after, "America/Sao_Paulo", all_sunday)
    assert short == timedelta(hours=22, minutes=59)
    # 2026-10-25 in Lisbon: 01:00-02:00 happens twice (an hour long)
    long = business_time_between(
        utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 12, 0), "Europe/Lisbon", all_sunday
    )
    assert long == timedelta(hours=24, minutes=59)
    due = add_business_time(utc(2026, 10, 24, 12, 0), long, "Europe/Lisbon", all_sunday)
    assert due == utc(2026, 10, 25, 23, 59)


def test_lisbon_fall_back_over_a_weekend() -> None:
    friday = utc(2026, 10, 23, 16, 0)  # 17:00 WEST
    due = add_business_time(friday, timedelta(hours=2), "Europe/Lisbon", WEEKDAYS)
    assert due == utc(2026, 10, 26, 10, 0)  # 10:00 WET Monday = 10:00 UTC


def test_hours_too_short_for_a_target_end_the_search() -> None:
    minute_a_week = {"mon": [["09:00", "09:01"]]}
    with pytest.raises(ValueError, match="never open"):
        add_business_time(utc(2026, 1, 1), timedelta(days=30), "UTC", minute_a_week)
