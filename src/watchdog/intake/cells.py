"""Stage 1 intake: one spreadsheet cell → the value the input model wants. Pure: no I/O, no clock.

Dates ``dd-mm-yyyy`` (also ``dd.mm.yyyy`` and ISO ``yyyy-mm-dd``); ``3/5/2024`` is refused as
ambiguous (3 May in Danish, 5 March in a US export). Times ``dd-mm-yyyy HH:MM[:SS]`` in
Europe/Copenhagen local time, or ISO 8601 with an offset; a time in the autumn fold or the spring
gap is refused with a way out, and so is one whose UTC form does not exist (year 9999 at -14:00).
Comma decimals (``0,8``). Booleans ``ja/nej``, ``true/false``, ``1/0``, ``x``/empty. Lists are
comma-separated ext_ids in one cell. Typed XLSX cells (dates, date-times, numbers) are taken as
they are.

The cell every export writes (an ISO 8601 instant with an offset, an ISO date, ``ja``/``nej``) is
read by a fast path that takes only what the full reading would read the same way (a cell
beginning and ending with an ASCII digit that ``fromisoformat`` reads, with an offset for an
instant; a boolean word already lower-case and stripped); anything else, and anything the fast
path cannot finish, goes through the full reading, so values and refusals are the same.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from watchdog.clock import LOCAL_TZ


_DATE_DK = re.compile(r"^(\d{1,2})[-.](\d{1,2})[-.](\d{4})$")
_DATETIME_DK = re.compile(r"^(\d{1,2})[-.](\d{1,2})[-.](\d{4})[ T]+(\d{1,2})[:.](\d{2})(?::(\d{2}))?$")
# 3/5/2024 is 3 May to a Dane and 5 March to an American (and to Excel set to US English).
_DATE_SLASHED = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2,4})\b")
_TRUE = {"ja", "j", "yes", "y", "true", "sand", "1", "x"}
_FALSE = {"nej", "n", "no", "false", "falsk", "0"}
# Fast paths: a boolean word as the sets hold it; the digits a cell read by fromisoformat begins
# and ends with (its year is four ASCII digits, so the full reading takes it as ISO 8601 as well).
_BOOLS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
_DIGITS = frozenset("0123456789")
_date_fromiso = date.fromisoformat
_datetime_fromiso = datetime.fromisoformat


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _refuse_slashed(text: str) -> None:
    m = _DATE_SLASHED.match(text)
    if m is None:
        return
    a, b, year = (int(g) for g in m.groups())
    readings = [f"{day:02d}-{month:02d}-{year} for {day} {_MONTHS[month - 1]}"
                for day, month in dict.fromkeys(((a, b), (b, a))) if 1 <= month <= 12 and 1 <= day <= 31]
    raise ValueError(
        f"{text!r} is ambiguous: with '/' a Danish export means day/month, a US one month/day; "
        "write dd-mm-yyyy" + (f": {' or '.join(readings)}" if readings else ""))


def _iso_shaped(text: str) -> bool:
    """Whether ``text`` starts with three digits: then no Danish or slashed pattern can match it
    (each has a separator after one or two digits), and only ISO 8601 can read it."""
    return len(text) > 2 and text[2].isdigit() and text[0].isdigit() and text[1].isdigit()


def parse_date(text: str) -> date:
    # Fast path: no space around it and digits at both ends, so the full reading below would
    # strip nothing, find it ISO-shaped and call date.fromisoformat on it too.
    if text and text[0] in _DIGITS and text[-1] in _DIGITS:
        try:
            return _date_fromiso(text)
        except ValueError:
            pass  # the full reading refuses it with its message
    return _parse_date(text)


def _parse_date(text: str) -> date:
    text = text.strip()
    if _iso_shaped(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date (use dd-mm-yyyy, e.g. 05-03-2024)") from None
    _refuse_slashed(text)
    m = _DATE_DK.match(text)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date (use dd-mm-yyyy, e.g. 05-03-2024)")


def local_to_utc(naive: datetime) -> datetime:
    """A Europe/Copenhagen wall-clock time as an aware UTC instant; refuse fold and gap times."""
    first = naive.replace(tzinfo=LOCAL_TZ, fold=0)
    second = naive.replace(tzinfo=LOCAL_TZ, fold=1)
    if first.utcoffset() != second.utcoffset():
        shown = naive.strftime("%d-%m-%Y %H:%M")
        back = first.astimezone(UTC).astimezone(LOCAL_TZ).replace(tzinfo=None)
        if back != naive:
            raise ValueError(
                f"{shown} does not exist in Danish time (the clocks skip 02:00–03:00 that night); "
                "give the time in ISO 8601 with an offset, e.g. "
                f"{naive.date().isoformat()}T{naive:%H:%M}+01:00"
            )
        raise ValueError(
            f"{shown} happens twice in Danish time (the clocks go back at 03:00 that night); "
            f"give it in ISO 8601 with an offset: {naive.date().isoformat()}T{naive:%H:%M}+02:00 "
            f"(summer time) or …+01:00 (winter time)"
        )
    try:
        return first.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{naive:%d-%m-%Y %H:%M} is outside the times the service can hold") from None


def parse_instant(text: str, *, naive_is_local: bool = True) -> datetime:
    """``dd-mm-yyyy HH:MM`` local, ``dd-mm-yyyy`` (00:00 local), or ISO 8601 (with an offset)."""
    # Fast path: ISO 8601 with an offset (ending in a digit, so not "Z"), nothing around it. The
    # full reading would strip nothing, find it ISO-shaped and convert it just so.
    if text and text[0] in _DIGITS and text[-1] in _DIGITS:
        try:
            value = _datetime_fromiso(text)
        except ValueError:
            value = None
        if value is not None and value.tzinfo is not None:
            try:
                return value.astimezone(UTC)
            except OverflowError:
                pass  # the full reading refuses it with its message
    return _parse_instant(text, naive_is_local)


def _parse_instant(text: str, naive_is_local: bool) -> datetime:
    text = text.strip()
    if _iso_shaped(text):
        return _parse_iso_instant(text, naive_is_local)
    _refuse_slashed(text)
    m = _DATETIME_DK.match(text)
    if m:
        day, month, year, hour, minute, second = (int(g or 0) for g in m.groups())
        try:
            naive = datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date and time") from None
        return local_to_utc(naive)
    if _DATE_DK.match(text):
        return local_to_utc(datetime.combine(parse_date(text), time(0, 0)))
    return _parse_iso_instant(text, naive_is_local)


def _parse_iso_instant(text: str, naive_is_local: bool) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (use dd-mm-yyyy HH:MM in Danish time, "
            "or ISO 8601 with an offset, e.g. 2024-03-05T14:30+01:00)"
        ) from None
    if value.tzinfo is None:
        if not naive_is_local:
            raise ValueError(f"{text!r} has no UTC offset (add one, e.g. +01:00)")
        return local_to_utc(value)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the times the service can hold "
                         "(its UTC form is past the year 9999 or before the year 1)") from None


def parse_bool(text: str) -> bool:
    value = _BOOLS.get(text)  # fast path: "ja", "nej" … as written
    return _parse_bool(text) if value is None else value


def _parse_bool(text: str) -> bool:
    norm = text.strip().lower()
    if norm in _TRUE:
        return True
    if norm in _FALSE:
        return False
    raise ValueError(f"{text!r} is not yes/no (use ja or nej)")


def parse_decimal(text: str) -> float:
    norm = text.strip().replace(" ", "").replace("\u00a0", "")
    if "," in norm:
        # Danish: '.' groups thousands, ',' is the decimal mark.
        norm = norm.replace(".", "").replace(",", ".")
    try:
        value = float(norm)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (use a decimal comma, e.g. 0,8)") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,|]", text) if item.strip()]


def convert_cell(kind: str, value: Any) -> Any:
    """A spreadsheet cell (text, or a typed openpyxl value) as the input model wants it."""
    if isinstance(value, datetime):
        if kind == "date":
            if value.time() != time(0, 0):
                raise ValueError(f"{value:%d-%m-%Y %H:%M} is a time, not a date")
            return value.date()
        if kind == "instant":
            return local_to_utc(value) if value.tzinfo is None else parse_instant(value.isoformat())
        return value.strftime("%d-%m-%Y %H:%M")
    if isinstance(value, date):
        if kind == "instant":
            return local_to_utc(datetime.combine(value, time(0, 0)))
        return value if kind == "date" else value.strftime("%d-%m-%Y")
    if isinstance(value, time | timedelta):
        raise ValueError(f"{value} is a time of day without a date")
    if isinstance(value, bool):
        if kind == "bool":
            return value
        value = "ja" if value else "nej"
    if isinstance(value, int | float):
        if kind == "decimal":
            return float(value)
        if kind == "bool" and value in (0, 1):
            return bool(value)
        # An id typed as a number in Excel: 1001, not 1001.0.
        value = str(int(value)) if float(value).is_integer() else str(value)
    text = str(value)
    if kind == "date":
        return parse_date(text)
    if kind == "instant":
        return parse_instant(text)
    if kind == "bool":
        return parse_bool(text)
    if kind == "decimal":
        return parse_decimal(text)
    if kind == "list":
        return parse_list(text)
    return text
