"""A page's filters from its query string, checked with Danish messages. Pure: no I/O.

A bad value never becomes a 500: each problem is a ``FieldError`` naming the field (its HTML id,
so the error summary links to it) and saying how to fix it, and the page shows the rest as usual.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from watchdog.clock import end_of_local_day, local_midnight
from watchdog.rules.types import Duty

_DK_DATE = re.compile(r"^\s*(\d{1,2})-(\d{1,2})-(\d{4})\s*$")
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


@dataclass(frozen=True)
class FieldError:
    field: str  # the input's id
    message: str


@dataclass
class Problems:
    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_id: str, message: str) -> None:
        self.errors.append(FieldError(field_id, message))

    def __bool__(self) -> bool:
        return bool(self.errors)

    def of(self, field_id: str) -> str | None:
        return next((e.message for e in self.errors if e.field == field_id), None)


def parse_date(text: str | None, field_id: str, label: str, problems: Problems) -> date | None:
    """dd-mm-åååå (as shown everywhere) or åååå-mm-dd; empty is None."""
    if text is None or not text.strip():
        return None
    m = _DK_DATE.match(text)
    parts = (int(m.group(3)), int(m.group(2)), int(m.group(1))) if m else None
    if parts is None and (m := _ISO_DATE.match(text)):
        parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if parts is None:
        problems.add(field_id, f"{label} skal være en dato som dd-mm-åååå, fx 01-03-2026 (ikke «{text.strip()[:30]}»)")
        return None
    try:
        return date(*parts)
    except ValueError:
        problems.add(field_id, f"{label} findes ikke i kalenderen («{text.strip()[:30]}»); skriv en rigtig dato")
        return None


def parse_duties(values: Iterable[str], field_id: str, problems: Problems) -> list[Duty]:
    out = []
    for v in values:
        if not v:
            continue
        try:
            out.append(Duty(v))
        except ValueError:
            problems.add(field_id, f"Ukendt pligt «{v[:40]}»; vælg en pligt fra listen")
    return out


def date_range(start: date | None, end: date | None, end_id: str, problems: Problems
               ) -> tuple[datetime | None, datetime | None]:
    """The instants of a typed range: from local midnight of ``start`` to the end of ``end``."""
    if start and end and end < start:
        problems.add(end_id, "Til-datoen ligger før fra-datoen; ret en af dem")
        return None, None
    return (local_midnight(start) if start else None, end_of_local_day(end) if end else None)


def dk(value: date | None) -> str:
    return value.strftime("%d-%m-%Y") if value else ""
