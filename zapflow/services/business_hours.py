"""A company's opening hours in its own time zone: is a moment inside them, and when they next open.

Hours are wall-clock ranges per weekday (``{"mon": [["09:00", "18:00"]], ...}``, a missing day is
closed). Every moment is handled as an aware datetime converted with ``zoneinfo``, so daylight
saving changes move the opening with the clock: 09:00 stays 09:00 local on both sides of a
transition, and an opening that falls in a skipped hour opens at the first instant that exists.
A company with no hours at all is treated as always open. Holidays (local dates) are closed all
day.

SLA targets count business time (``add_business_time``: the due moment of a target started at a
moment; ``business_time_between``: how much of a span was open): only the open intervals count,
each computed per local day, so a night, a weekend or a holiday adds nothing and a DST day's
opening counts the hours that really passed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# a week of closed days means no opening at all; two weeks covers any range list safely
SEARCH_DAYS = 15
# how far a business-time sum looks ahead before deciding the hours never open (holidays may
# close whole weeks; ten years of days is still a bounded loop on hostile settings)
MAX_DAYS = 3660

Hours = dict[str, list[list[str]]]


def is_open(moment: datetime, timezone: str, hours: Hours) -> bool:
    return next_opening(moment, timezone, hours) == moment


def next_opening(moment: datetime, timezone: str, hours: Hours) -> datetime:
    """``moment`` itself when it is within opening hours, otherwise the next opening (UTC)."""
    if not any(hours.values()):
        return moment
    zone = ZoneInfo(timezone)
    local_day = moment.astimezone(zone).date()
    for offset in range(SEARCH_DAYS):
        day = local_day + timedelta(days=offset)
        for start, end in _ranges(day, zone, hours):
            if moment < end:
                return max(moment, start)
    raise ValueError("business hours never open")  # only reachable with malformed hours


def add_business_time(
    start: datetime,
    duration: timedelta,
    timezone: str,
    hours: Hours,
    holidays: Collection[date] = (),
) -> datetime:
    """The moment ``duration`` of open time after ``start`` (UTC): a target started at 17:00
    Friday with two hours to go on 09:00-18:00 weekdays is due 10:00 Monday, local."""
    if not any(hours.values()):
        return start + duration
    left = duration
    for opens, closes in _open_intervals(start, ZoneInfo(timezone), hours, holidays):
        if closes - opens >= left:
            return opens + left
        left -= closes - opens
    raise ValueError("business hours never open")


def business_time_between(
    start: datetime,
    end: datetime,
    timezone: str,
    hours: Hours,
    holidays: Collection[date] = (),
) -> timedelta:
    """How much of ``start``..``end`` was inside opening hours (zero when ``end`` is earlier)."""
    if end <= start:
        return timedelta(0)
    if not any(hours.values()):
        return end - start
    total = timedelta(0)
    for opens, closes in _open_intervals(start, ZoneInfo(timezone), hours, holidays):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return total


def _open_intervals(
    start: datetime, zone: ZoneInfo, hours: Hours, holidays: Collection[date]
) -> Iterator[tuple[datetime, datetime]]:
    """The open intervals from ``start`` on, in order, the first cut to begin at ``start``."""
    first_day = start.astimezone(zone).date()
    for offset in range(MAX_DAYS):
        day = first_day + timedelta(days=offset)
        if day in holidays:
            continue
        for opens, closes in _ranges(day, zone, hours):
            if closes > start:
                yield max(opens, start), closes


def _ranges(day: date, zone: ZoneInfo, hours: Hours) -> list[tuple[datetime, datetime]]:
    opening = hours.get(DAYS[day.weekday()], [])
    return [(_instant(day, start, zone), _instant(day, end, zone)) for start, end in opening]


def _instant(day: date, clock: str, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time; a time skipped by DST maps forward."""
    hour, minute = map(int, clock.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=zone)
    # With fold=0 a time in the spring-forward gap converts with the offset in force before it,
    # which lands just after the gap (02:30 → 03:30); a repeated autumn time takes its first.
    return local.astimezone(UTC)
