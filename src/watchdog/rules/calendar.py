"""Counting time the way LEGAL.md says. Pure: no database, no clock, no network.

- Hours are elapsed hours on the real clock (24 hours across a DST change are 24 real hours).
- Months are calendar months on the local (Europe/Copenhagen) date, clamped to the last day of a
  shorter month (31 October + 4 months = 28/29 February); a duty due "on a date" is due at the end
  of that date, i.e. the next local midnight.
- Hverdage, for a deadline counted in hverdage, are Monday–Friday except Danish public holidays
  (helligdage), Grundlovsdag, 24 December and 31 December: the day list Danish statute uses when
  a deadline falls on a day that is no hverdag (forældelsesloven § 27, stk. 2: "i en weekend, på en
  helligdag, grundlovsdag, den 24. eller den 31. december"). Neither SEL § 155 b nor BL § 138
  defines the word; LEGAL.md adopts this list (until 2026-12 the three days counted as hverdage,
  which gave a due date one working day too early).
- Two calendars, each defined once and named for what it is for: ``is_hverdag`` counts deadlines
  in hverdage; ``is_warning_day`` says on which days a warning may go out. Today they skip the same
  days (LEGAL.md), but they answer different questions, so a change to one is a change to one.
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
    if instant.tzinfo is not UTC:  # facts are UTC already; anything else is checked and converted
        instant = ensure_aware(instant)
    return instant + _hours(hours)


@lru_cache(maxsize=64)
def _hours(hours: int) -> timedelta:
    return timedelta(hours=hours)


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


#: Forældelsesloven § 27, stk. 2 names these beside weekends and helligdage: Grundlovsdag
#: (5 June), juleaftensdag and nytårsaftensdag. They are not helligdage (the holidays package
#: rightly leaves them out), but no deadline falls due on them.
FL27_DAYS = ((6, 5), (12, 24), (12, 31))


def is_public_holiday(day: date) -> bool:
    """A Danish helligdag (Store bededag only until 2023)."""
    return day in _public_holidays(day.year)


def is_hverdag(day: date) -> bool:
    """The deadline calendar: a hverdag as forældelsesloven § 27, stk. 2 counts it (not a
    weekend, a helligdag, Grundlovsdag, 24 or 31 December)."""
    return day.weekday() < 5 and (day.month, day.day) not in FL27_DAYS and not is_public_holiday(day)


def is_warning_day(day: date) -> bool:
    """The warning calendar: a day on which a warning may go out (LEGAL.md: the hverdage)."""
    return is_hverdag(day)


def is_non_working_day(day: date) -> bool:
    """For *when to warn*: the days of the warning calendar that are off."""
    return not is_warning_day(day)


@lru_cache(maxsize=16384)
def add_hverdage(day: date, count: int) -> date:
    """The ``count``-th hverdag after ``day`` (``day`` itself is not counted)."""
    if count < 0:
        raise ValueError("count must not be negative")
    current = day
    left = count
    while left:
        current += timedelta(days=1)
        if is_hverdag(current):
            left -= 1
    return current


def hverdage_after(instant: datetime, count: int) -> datetime:
    """Due instant of "within ``count`` hverdage after ``instant``": end of that local date."""
    return end_of_local_day(add_hverdage(local_date(instant), count))


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
