"""Counting time the way LEGAL.md says. Pure: no database, no clock, no network.

- Hours are elapsed hours on the real clock (24 hours across a DST change are 24 real hours).
- Months are calendar months on the local (Europe/Copenhagen) date, clamped to the last day of a
  shorter month (31 October + 4 months = 28/29 February); a duty due "on a date" is due at the end
  of that date, i.e. the next local midnight.
- Hverdage are Monday–Friday except Danish public holidays (helligdage). Grundlovsdag, 24 and 31
  December are not helligdage: they count as hverdage for the municipality's legal deadlines
  (the stricter reading); ``is_non_working_day`` adds them for *when to warn*.
- No extension over weekends or holidays for the municipality's own deadlines.
- The regime is chosen by the instant a clock started: Serviceloven before 2024-01-01 00:00
  Europe/Copenhagen, Barnets lov from then.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import holidays

from watchdog.clock import end_of_local_day, ensure_aware, local_date, local_midnight
from watchdog.rules.types import Regime

#: Barnets lov took effect at local midnight; as a UTC instant that is 2023-12-31 23:00.
BL_IN_FORCE: datetime = local_midnight(date(2024, 1, 1))


def regime_for(clock_start: datetime) -> Regime:
    """SEL for a clock that started before 2024-01-01 00:00 local time, BL from that instant on."""
    try:
        return Regime.BL if clock_start >= BL_IN_FORCE else Regime.SEL
    except TypeError:  # naive: comparing it with an aware instant is refused; say why
        ensure_aware(clock_start, what="clock start")
        raise


def add_hours(instant: datetime, hours: int) -> datetime:
    """``hours`` elapsed hours after ``instant`` (UTC arithmetic: DST changes do not stretch it)."""
    return ensure_aware(instant) + timedelta(hours=hours)


@lru_cache(maxsize=16384)
def add_months_to_date(day: date, months: int) -> date:
    """The same day ``months`` calendar months later (or earlier), clamped to the month's end.

    Plain arithmetic rather than dateutil's relativedelta (same result, a fraction of the cost:
    this runs for most of the half million deadlines of a national recompute)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def months_after(instant: datetime, months: int) -> datetime:
    """Due instant of "``months`` months after ``instant``": end of that local date."""
    return end_of_local_day(add_months_to_date(local_date(instant), months))


def end_of_date(instant: datetime) -> datetime:
    """The end of the local date on which ``instant`` falls."""
    return end_of_local_day(local_date(instant))


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("DK", years=year, language="da"))


# Grundlovsdag, juleaftensdag, nytårsaftensdag: offices are closed, but they are not helligdage.
_DAYS_OFF = ((6, 5), (12, 24), (12, 31))


def is_public_holiday(day: date) -> bool:
    return day in _public_holidays(day.year)


def is_working_day(day: date) -> bool:
    """A hverdag: Monday–Friday and not a Danish public holiday (helligdag)."""
    return day.weekday() < 5 and not is_public_holiday(day)


def is_non_working_day(day: date) -> bool:
    """For *when to warn*: weekends, helligdage, and Grundlovsdag, 24 and 31 December."""
    return not is_working_day(day) or (day.month, day.day) in _DAYS_OFF


@lru_cache(maxsize=16384)
def add_working_days(day: date, count: int) -> date:
    """The ``count``-th hverdag after ``day`` (``day`` itself is not counted)."""
    if count < 0:
        raise ValueError("count must not be negative")
    current = day
    left = count
    while left:
        current += timedelta(days=1)
        if is_working_day(current):
            left -= 1
    return current


def working_days_after(instant: datetime, count: int) -> datetime:
    """Due instant of "within ``count`` hverdage after ``instant``": end of that local date."""
    return end_of_local_day(add_working_days(local_date(instant), count))


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
