"""The one place that reads the real clock.

Everything else (rules, planning, rendering, reports) takes ``now`` as an argument, so tests
control time by passing it in. Instants are timezone-aware UTC everywhere; Europe/Copenhagen is
used only for display and for date-based rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/Copenhagen")


def utcnow() -> datetime:
    """The current instant, aware, in UTC. Only the CLI, the scheduler and the API call this."""
    return datetime.now(UTC)


def ensure_aware(value: datetime, *, what: str = "instant") -> datetime:
    """Return ``value`` in UTC; refuse a naive datetime (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def to_local(value: datetime) -> datetime:
    """An aware instant shown in Europe/Copenhagen."""
    return ensure_aware(value).astimezone(LOCAL_TZ)


def local_date(value: datetime) -> date:
    """The Danish calendar date on which an instant falls."""
    if value.tzinfo is None:  # one zone conversion, not two: the rules ask this half a million times
        ensure_aware(value)
    return value.astimezone(LOCAL_TZ).date()


@lru_cache(maxsize=8192)
def local_midnight(day: date) -> datetime:
    """The instant (UTC) at which a Danish calendar day starts.

    Cached: a recompute asks for the same few thousand dates hundreds of thousands of times, and
    a zone conversion is one of its costliest steps."""
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_TZ).astimezone(UTC)


@lru_cache(maxsize=8192)
def end_of_local_day(day: date) -> datetime:
    """The instant (UTC) at which a Danish calendar day ends: the next day's local midnight.

    A duty due "on a date" is due at the end of that date. Using the next midnight (not 23:59:59)
    keeps comparisons exact: anything strictly before it is on time.
    """
    return local_midnight(day + timedelta(days=1))


def format_local(value: datetime) -> str:
    """Danish display of an instant, e.g. '01-04-2024 kl. 00:30'."""
    return to_local(value).strftime("%d-%m-%Y kl. %H:%M")


def format_due(value: datetime) -> str:
    """Danish display of a due instant. A duty due "on a date" ends at the next local midnight;
    showing that as '10-11-2026 kl. 00:00' reads as a day late, so it is shown as the end of
    the date itself: 'udgangen af 09-11-2026'."""
    local = to_local(value)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return f"udgangen af {(local - timedelta(days=1)).strftime('%d-%m-%Y')}"
    return local.strftime("%d-%m-%Y kl. %H:%M")
