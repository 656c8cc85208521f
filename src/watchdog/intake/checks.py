"""Stage 1 intake: the checks a municipality configures in ``[intake]``. Pure: no I/O, no clock.

The input models (``watchdog.intake.schemas``) check what holds everywhere; these check what
depends on the configuration and on the time of the import (``now`` comes in):

- every date and instant lies in the plausible range, ``intake.earliest_date`` to
  ``intake.latest_years_ahead`` years after the day of the import: 31-12-9999 is a typing error,
  and would overflow the deadline arithmetic of every later poll;
- every case reference (a case's ``ext_id`` and every record's ``case``) matches
  ``intake.case_ref_pattern`` in full, when it is set: a child's name typed into the reference
  field is refused. The refused value is never repeated in the message.

``watchdog.intake.upsert.import_valid`` runs them on every record, from a file or over HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from watchdog.clock import local_date
from watchdog.errors import Problem
from watchdog.intake.schemas import field_kind

_CASE_REF_FIELDS = {"cases": "ext_id", "notifications": "case", "investigations": "case", "measures": "case"}


def dk(day: date) -> str:
    """dd-mm-yyyy for any year (strftime drops the leading zeros of years before 1000)."""
    return f"{day.day:02d}-{day.month:02d}-{day.year:04d}"


def plausible_range(settings, *, now: datetime) -> tuple[date, date]:
    """The first and last day a date or instant may fall on, for an import at ``now``."""
    today = local_date(now)
    years = settings.intake.latest_years_ahead
    try:
        latest = today.replace(year=today.year + years)
    except ValueError:  # 29 February, and the year `years` ahead is not a leap year
        latest = today.replace(year=today.year + years, day=28)
    return settings.intake.earliest_date, latest


def check_records(records: Iterable[Any], *, settings, now: datetime) -> list[Problem]:
    """Every problem of the configured checks, for records that passed their input model.

    ``records`` are ``upsert.ValidRecord``s (entity spec, source, record number, model, given fields).
    """
    earliest, latest = plausible_range(settings, now=now)
    pattern_text = settings.intake.case_ref_pattern
    pattern = re.compile(pattern_text) if pattern_text else None
    reason = (f"is outside the plausible range {dk(earliest)} to {dk(latest)} "
              "(intake.earliest_date, intake.latest_years_ahead): a typing error?")
    problems: list[Problem] = []
    timed: dict[str, tuple[str, ...]] = {}  # per entity: its date and instant fields
    for rec in records:
        names = timed.get(rec.spec.name)
        if names is None:
            names = timed[rec.spec.name] = tuple(
                n for n in rec.spec.fields if field_kind(rec.spec.model, n) in ("date", "instant"))
        data = rec.data.__dict__  # the validated model's field values
        for name in names:
            value = data[name]
            if value is None:
                continue
            if isinstance(value, datetime):
                day = value.astimezone(UTC).date()
                shown = value.isoformat()
            elif isinstance(value, date):
                day, shown = value, dk(value)
            else:
                continue
            if not earliest <= day <= latest:
                problems.append(Problem(rec.source, rec.record, name, f"{shown} {reason}"))
        ref_field = _CASE_REF_FIELDS.get(rec.spec.name)
        if pattern is not None and ref_field is not None:
            value = getattr(rec.data, ref_field, None)
            if value is not None and not pattern.fullmatch(value):
                problems.append(Problem(
                    rec.source, rec.record, ref_field,
                    f"is not in the municipality's case-number format (intake.case_ref_pattern "
                    f"{pattern_text!r}); a case is known by its case number only, never by a name"))
    return problems
