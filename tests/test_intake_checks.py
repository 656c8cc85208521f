"""The configured intake checks (intake.checks): the run-at-a-time check finds a problem exactly
when the record-by-record one does, at the edges of the plausible range and for values that do
not compare, and then names the same problems in the same order."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import product

import pytest

from watchdog.intake.checks import _record_by_record, check_records, plausible_range
from watchdog.intake.schemas import ENTITIES
from watchdog.intake.writing import ValidRecord
from watchdog.settings import load_settings

NOW = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)
SETTINGS = load_settings(None, intake={"earliest_date": "2000-03-05", "latest_years_ahead": 2,
                                       "case_ref_pattern": r"S-\d+"})
EARLIEST, LATEST = plausible_range(SETTINGS, now=NOW)
PLUS14 = timezone(timedelta(hours=14))
MINUS12 = timezone(timedelta(hours=-12))
MIDNIGHT_FIRST = datetime(EARLIEST.year, EARLIEST.month, EARLIEST.day, tzinfo=UTC)
MIDNIGHT_AFTER = datetime(LATEST.year, LATEST.month, LATEST.day, tzinfo=UTC) + timedelta(days=1)
TICK = timedelta(microseconds=1)
PATTERN = re.compile(SETTINGS.intake.case_ref_pattern)

#: Instants at either side of the range's edges, in UTC and at offsets whose local date differs.
INSTANTS = [MIDNIGHT_FIRST, MIDNIGHT_FIRST - TICK, MIDNIGHT_AFTER, MIDNIGHT_AFTER - TICK,
            MIDNIGHT_FIRST.astimezone(PLUS14), (MIDNIGHT_FIRST - TICK).astimezone(PLUS14),
            MIDNIGHT_AFTER.astimezone(MINUS12), (MIDNIGHT_AFTER - TICK).astimezone(MINUS12), NOW]
DAYS = [EARLIEST, EARLIEST - timedelta(days=1), LATEST, LATEST + timedelta(days=1), NOW.date(), None]


def follow_up(i: int, performed_at, next_planned_on) -> ValidRecord:
    spec = ENTITIES["follow_ups"]
    data = spec.model.model_construct(ext_id=f"O-{i}", measure="F-1", performed_at=performed_at,
                                      next_planned_on=next_planned_on)
    return ValidRecord(spec, "follow_ups.csv", str(i + 2), data, frozenset({"performed_at"}))


def notification(i: int, case: str | None) -> ValidRecord:
    spec = ENTITIES["notifications"]
    data = spec.model.model_construct(ext_id=f"U-{i}", case=case, received_at=NOW)
    return ValidRecord(spec, "notifications.csv", str(i + 2), data, frozenset({"case"}))


def both(records):
    """The problems (as dicts) of the run check and of the record-by-record one."""
    return ([p.as_dict() for p in check_records(records, settings=SETTINGS, now=NOW)],
            [p.as_dict() for p in _record_by_record(records, EARLIEST, LATEST, PATTERN, PATTERN.pattern)])


@pytest.mark.parametrize(("performed_at", "next_planned_on"), list(product(INSTANTS, DAYS)))
def test_each_edge_of_the_range_is_judged_as_record_by_record(performed_at, next_planned_on):
    fast, exact = both([follow_up(0, performed_at, next_planned_on), follow_up(1, NOW, NOW.date())])
    assert fast == exact
    utc_day = performed_at.astimezone(UTC).date()
    outside = not EARLIEST <= utc_day <= LATEST or (next_planned_on is not None
                                                     and not EARLIEST <= next_planned_on <= LATEST)
    assert bool(fast) == outside


def test_a_run_with_problems_names_them_in_record_order():
    records = [follow_up(0, MIDNIGHT_AFTER, LATEST + timedelta(days=1)), follow_up(1, NOW, None),
               follow_up(2, MIDNIGHT_FIRST - TICK, EARLIEST), notification(3, "Anne Hansen"),
               notification(4, "S-1"), notification(5, None), notification(6, "")]
    fast, exact = both(records)
    assert fast == exact
    assert [(p["record"], p["field"]) for p in fast] == [("2", "performed_at"), ("2", "next_planned_on"),
                                                   ("4", "performed_at"), ("5", "case"), ("8", "case")]


@pytest.mark.parametrize("odd", [datetime(2024, 1, 1), date(2024, 1, 1), "2024-01-01"])
def test_values_that_do_not_compare_with_an_instant_are_judged_record_by_record(odd):
    # A naive datetime, a date or text where an instant belongs (the models never give them):
    # the run check cannot compare them and leaves them to the record-by-record one.
    records = [follow_up(0, NOW, None), follow_up(1, odd, datetime(2024, 1, 1, tzinfo=UTC))]
    fast, exact = both(records)
    assert fast == exact


def test_case_references_are_checked_against_the_pattern_run_by_run():
    good = [notification(i, f"S-{i}") for i in range(5)]
    assert check_records(good, settings=SETTINGS, now=NOW) == []
    fast, exact = both([*good, notification(9, "S-9x")])
    assert fast == exact and [(p["record"], p["field"]) for p in fast] == [("11", "case")]
