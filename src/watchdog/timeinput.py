"""Dates and times people type: CLI options and API query parameters. Pure: no I/O, no clock.

The same forms as the import and the output: ``dd-mm-yyyy`` (also ``dd.mm.yyyy`` and ISO
``yyyy-mm-dd``), ``dd-mm-yyyy HH:MM`` in Danish local time, or ISO 8601 (local time without an
offset). A bare date as a lower bound is the start of that day, as an upper bound its end, so
``--due-to 03-12-2026`` includes a deadline due "udgangen af 03-12-2026".
"""

from __future__ import annotations

from datetime import date, datetime

from watchdog.clock import end_of_local_day, local_midnight


def parse_day(text: str) -> date:
    """A calendar date: dd-mm-yyyy, dd.mm.yyyy or yyyy-mm-dd."""
    from watchdog.intake.parsing import parse_date

    return parse_date(text)


def parse_time(text: str, *, end_of_day: bool = False) -> datetime:
    """An instant (aware, UTC). A bare date is its start, or with ``end_of_day`` its end."""
    from watchdog.intake.parsing import parse_instant

    try:
        day = parse_day(text)
    except ValueError:
        pass
    else:
        return end_of_local_day(day) if end_of_day else local_midnight(day)
    try:
        return parse_instant(text)
    except ValueError as exc:
        if "in Danish time (the clocks" in str(exc):
            raise  # a DST gap or fold: the parser's own message says what to write instead
        raise ValueError(f"{text.strip()!r} is not a date or time: use dd-mm-yyyy, dd-mm-yyyy HH:MM "
                         "(Danish time) or ISO 8601, e.g. 03-12-2026 or 03-12-2026 14:30") from None
