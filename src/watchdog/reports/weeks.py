"""ISO weeks and the weekly digest's send time, in Europe/Copenhagen. Pure: no I/O."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from watchdog.clock import LOCAL_TZ, ensure_aware, local_date
from watchdog.reports import ReportInputError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def iso_week_of(day: date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def parse_iso_week(text: str) -> tuple[int, int]:
    """'2024-W10' → (2024, 10); a malformed week is a user's mistake."""
    try:
        y, w = text.strip().upper().split("-W")
        year, week = int(y), int(w)
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ReportInputError(f"not an ISO week: {text!r} (expected YYYY-Www, e.g. 2024-W10)") from None
    return year, week


def week_monday(week: str) -> date:
    year, number = parse_iso_week(week)
    return date.fromisocalendar(year, number, 1)


def send_time(week: str, schedule) -> datetime:
    """When week ``week``'s digest is due: the digest day and local time within that week (UTC)."""
    day = week_monday(week) + timedelta(days=_DAYS.index(schedule.digest_day))
    local = datetime.combine(day, time(schedule.digest_hour, schedule.digest_minute), tzinfo=LOCAL_TZ)
    return ensure_aware(local)


def latest_due_week(now: datetime, schedule) -> str:
    """The most recent week whose send time is at or before ``now``."""
    now = ensure_aware(now, what="now")
    this_week = iso_week_of(local_date(now))
    if send_time(this_week, schedule) <= now:
        return this_week
    return iso_week_of(week_monday(this_week) - timedelta(days=7))
