"""Stage 1 intake: the checks a municipality configures in ``[intake]``. Pure: no I/O, no clock.

The input models (``watchdog.intake.schemas``) check what holds everywhere; these check what
depends on the configuration and on the time of the import (``now`` comes in):

- every date and instant lies in the plausible range, ``intake.earliest_date`` to
  ``intake.latest_years_ahead`` years after the day of the import: 31-12-9999 is a typing error,
  and would overflow the deadline arithmetic of every later poll;
- every case reference (a case's ``ext_id`` and every record's ``case``) matches
  ``intake.case_ref_pattern`` in full, when it is set: a child's name typed into the reference
  field is refused. The refused value is never repeated in the message.

``watchdog.intake.upsert.upsert_records`` runs them on every chunk of records, from a file or over
HTTP: a field at a time over the chunk (its least and greatest value), and record by record only
where that finds a problem, to name each one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from operator import itemgetter
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

    Records come in runs of one entity (the import's chunks are). A run is first checked a field
    at a time: the least and greatest value of each date and instant field against the range,
    and every case reference against the pattern. Only a run where that finds something (or
    cannot say: values that do not compare) is checked record by record, which names each
    problem in the order of the records.
    """
    earliest, latest = plausible_range(settings, now=now)
    pattern_text = settings.intake.case_ref_pattern
    pattern = re.compile(pattern_text) if pattern_text else None
    bounds = _bounds(earliest, latest)
    problems: list[Problem] = []
    for spec, run in groupby(records, key=_spec):
        run = list(run)
        if not _run_passes(spec, run, bounds, pattern):
            problems.extend(_record_by_record(run, earliest, latest, pattern, pattern_text))
    return problems


def _spec(rec) -> Any:
    return rec.spec


@dataclass(frozen=True)
class _Bounds:
    """The plausible range as each kind of value compares: ``low <= value < high``."""

    day_low: date
    day_high: date | None  # None: no day after the last one
    instant_low: datetime
    instant_high: datetime | None


def _bounds(earliest: date, latest: date) -> _Bounds:
    try:
        after = latest + timedelta(days=1)
    except OverflowError:
        after = None
    # An instant's UTC date is in the range exactly when the instant is at or after midnight UTC
    # of the first day and before midnight UTC after the last one.
    return _Bounds(earliest, after, datetime.combine(earliest, time(), UTC),
                   None if after is None else datetime.combine(after, time(), UTC))


_timed_fields: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _timed(spec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The entity's date fields and its instant fields (its model's: ``spec.fields``)."""
    found = _timed_fields.get(spec.model)
    if found is None:
        kinds = {n: field_kind(spec.model, n) for n in spec.fields}
        found = _timed_fields[spec.model] = (tuple(n for n, k in kinds.items() if k == "date"),
                                             tuple(n for n, k in kinds.items() if k == "instant"))
    return found


def _run_passes(spec, run: list, bounds: _Bounds, pattern) -> bool:
    """True when no record of ``run`` (all of ``spec``) has a problem; False when one may have."""
    data = [rec.data.__dict__ for rec in run]  # the validated models' field values
    dates, instants = _timed(spec)
    try:
        for names, low, high in ((dates, bounds.day_low, bounds.day_high),
                                 (instants, bounds.instant_low, bounds.instant_high)):
            for name in names:
                values = [v for v in map(itemgetter(name), data) if v is not None]
                if values and not (low <= min(values) and (high is None or max(values) < high)):
                    return False
    except TypeError:  # values that do not compare with the bound or each other: look at each
        return False
    ref_field = _CASE_REF_FIELDS.get(spec.name)
    if pattern is not None and ref_field is not None:
        refs = [getattr(rec.data, ref_field, None) for rec in run]
        if not all(map(pattern.fullmatch, [r for r in refs if r is not None])):
            return False
    return True


def _record_by_record(records: Iterable[Any], earliest: date, latest: date, pattern,
                      pattern_text: str | None) -> list[Problem]:
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
