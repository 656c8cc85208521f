"""The barometer counted in the database equals the barometer replayed from the outcome log.

``barometer_report`` counts the cases whose events all lie by the as-of instant from their deadline
rows in SQL and replays the log only for the others (``reports.barometer_sql``); ``replay_all=True``
replays every case (the rules as written). On a store the service lived through (recomputed every
week, so statuses were recorded as time went by, and a correction rewrote the past), any period,
as-of instant, printout time and team must give the same report both ways.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlmodel import select

from conftest import at
from watchdog.casestore import Case, Investigation, Team
from watchdog.clock import local_midnight
from watchdog.recompute import refresh_deadlines
from watchdog.reports import ReportInputError
from watchdog.reports.barometer import Period, barometer_report
from watchdog.reports.barometer_sql import replayed_cases
from watchdog.settings import load_settings

SETTINGS = load_settings()
START = date(2025, 1, 1)
LIVED_UNTIL = at("2026-03-01 06:00")


def _lived_store(session) -> list[str]:
    """Two teams' cases, recomputed every Monday from 2025 to March 2026; in June 2025 the case
    system corrects three completion dates backwards (history rewritten). Returns the team refs."""
    from watchdog.demo_data import Scale, generate, populate

    m = generate(11, at("2026-01-01 00:00"), Scale(cases=50, caseworkers=4, teams=2))
    populate(session, m)
    session.commit()
    ids = list(session.exec(select(Case.id)).all())
    day = START
    while local_midnight(day) < LIVED_UNTIL:
        refresh_deadlines(session, now=local_midnight(day) + timedelta(hours=6), settings=SETTINGS, case_ids=ids)
        session.commit()
        if day == date(2025, 6, 2):
            done = session.exec(select(Investigation).where(Investigation.completed_at.is_not(None))
                                .order_by(Investigation.id).limit(3)).all()
            for inv in done:
                inv.completed_at = inv.completed_at - timedelta(days=40)
                session.add(inv)
            session.commit()
        day += timedelta(days=7)
    return [t.ext_id for t in session.exec(select(Team).order_by(Team.id)).all()]


def _shown(report):
    return report.tables, report.not_logged, report.notes, report.as_of


@pytest.mark.parametrize("replayed_as", ["list", "subquery"])
def test_the_barometer_counted_in_sql_equals_the_one_replayed_from_the_log_for_any_period_and_instant(
        session, monkeypatch, replayed_as):
    # The cases to replay are bound as a list when few, else left a subquery: both ways checked.
    if replayed_as == "subquery":
        monkeypatch.setattr("watchdog.reports.barometer.REPLAYED_AS_LIST", 0)
    teams = _lived_store(session)
    paths_taken = set()

    @hsettings(max_examples=40, deadline=None, derandomize=True)
    @given(start=st.integers(0, 420), length=st.integers(0, 400), as_of_days=st.none() | st.integers(-30, 500),
           known_days=st.none() | st.integers(0, 460), team=st.sampled_from([None, *teams]))
    def check(start, length, as_of_days, known_days, team):
        period = Period(START + timedelta(days=start), START + timedelta(days=start + length))
        as_of = None if as_of_days is None else local_midnight(period.start) + timedelta(days=as_of_days, hours=12)
        if as_of is not None and as_of <= period.start_instant:
            return
        known_at = None if known_days is None else local_midnight(START) + timedelta(days=known_days, hours=9)
        kw = dict(now=LIVED_UNTIL, as_of=as_of, team=team, known_at=known_at)
        try:
            counted = barometer_report(session, period, **kw)
        except ReportInputError:  # an as-of instant before the period: refused both ways
            with pytest.raises(ReportInputError):
                barometer_report(session, period, **kw, replay_all=True)
            return
        replayed = barometer_report(session, period, **kw, replay_all=True)
        assert _shown(counted) == _shown(replayed)
        team_id = session.exec(select(Team.id).where(Team.ext_id == team)).first() if team else None
        some = session.execute(replayed_cases(period, as_of=counted.as_of, known_at=known_at,
                                              team_id=team_id)).first() is not None
        paths_taken.add(some)

    check()
    # Both ways were taken: periods with cases replayed (events after as-of) and without.
    assert paths_taken == {True, False}


def test_a_report_as_of_now_counts_in_sql_and_one_as_of_the_past_replays_and_both_agree(session):
    _lived_store(session)
    year = Period(date(2025, 1, 1), date(2025, 12, 31))
    now = LIVED_UNTIL
    assert session.execute(replayed_cases(year, as_of=now)).first() is None  # nothing after now: all in SQL
    halfway = at("2025-07-01 00:00")
    assert session.execute(replayed_cases(year, as_of=halfway)).first() is not None  # later events: replayed
    for as_of in (now, halfway):
        counted = barometer_report(session, year, now=now, as_of=as_of)
        assert sum(t.total for t in counted.tables) > 10
        assert _shown(counted) == _shown(barometer_report(session, year, now=now, as_of=as_of, replay_all=True))
