"""The outcome log's two times: history imported today reports at once, and an earlier printout
can be reproduced. Pure parts as tables; the end-to-end part on a real database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlmodel import select

from conftest import at
from watchdog.casestore import InvestigationKind, Case
from watchdog.clock import local_midnight
from watchdog.deadlines import Deadline, OutcomeEvent, OutcomeKind
from watchdog.recompute import refresh_deadlines
from watchdog.outcome_log import events_to_write, replay, status_at
from watchdog.reports.barometer import Period, barometer_report
from watchdog.rules.engine import RulePolicy, compute_case_deadlines
from watchdog.rules.facts import CaseFacts, InvestigationFacts
from watchdog.rules.status import history, settle
from watchdog.rules.types import Duty, Status
from watchdog.settings import load_settings

SETTINGS = load_settings()
O, M, ML, B, E, NA = (Status.OPEN, Status.MET, Status.MET_LATE, Status.BREACHED, Status.EXCEPTED,
                      Status.NOT_APPLICABLE)


def investigation(**kw) -> CaseFacts:
    inv = InvestigationFacts(id=3, aware_at=at("2025-01-10 09:00"), **kw)
    return CaseFacts(id=1, opened_at=at("2024-12-01 09:00"), worker_id=10, investigations=(inv,))


def the(facts: CaseFacts, now: str, duty=Duty.INVESTIGATION_4M):
    return next(d for d in compute_case_deadlines(facts, RulePolicy(), at(now)) if d.duty == duty)


@pytest.mark.parametrize("facts, expected", [
    # Aware 10-01-2025, due end of 10-05-2025; completed 02-06-2025: open, breached at the due
    # instant, met late at the completion.
    (dict(completed_at=at("2025-06-02 14:00")),
     [(at("2025-01-10 09:00"), O), (at("2025-05-11 00:00"), B), (at("2025-06-02 14:00"), ML)]),
    # Completed in time: met at the completion.
    (dict(completed_at=at("2025-04-01 10:00")), [(at("2025-01-10 09:00"), O), (at("2025-04-01 10:00"), M)]),
    # Foreløbig vurdering 01-05-2025 in time: excepted from the due time (until then it could still
    # be finished in time), and the late completion keeps it excepted.
    (dict(interim_assessed_at=at("2025-05-01 10:00"), completed_at=at("2025-07-01 10:00")),
     [(at("2025-01-10 09:00"), O), (at("2025-05-11 00:00"), E)]),
])
def test_a_deadline_history_has_each_status_at_the_instant_it_happened_in_the_case(facts, expected):
    d = the(investigation(**facts), "2026-12-01 12:00")
    assert list(history(d.origin, at("2026-12-01 12:00"))) == expected


def test_a_case_closed_before_the_due_time_is_not_applicable_from_the_closing():
    facts = investigation()
    facts = CaseFacts(id=1, opened_at=facts.opened_at, worker_id=10, closed_at=at("2025-03-01 12:00"),
                      investigations=facts.investigations)
    d = the(facts, "2026-12-01 12:00")
    assert list(history(d.origin, at("2026-12-01 12:00"))) == [(at("2025-01-10 09:00"), O),
                                                              (at("2025-03-01 12:00"), NA)]


def test_a_history_stops_at_now_and_knows_nothing_of_later_facts():
    d = the(investigation(completed_at=at("2025-06-02 14:00")), "2025-05-20 12:00")
    assert list(history(d.origin, at("2025-05-20 12:00"))) == [(at("2025-01-10 09:00"), O),
                                                              (at("2025-05-11 00:00"), B)]


instants = st.integers(min_value=0, max_value=400).map(lambda h: at("2025-01-01 00:00") + timedelta(hours=h * 7))


@hsettings(max_examples=150, deadline=None)
@given(aware=instants, completed=st.none() | instants, interim=st.none() | instants, closed=st.none() | instants,
       now=instants, probes=st.lists(instants, min_size=1, max_size=8))
def test_the_history_gives_at_every_instant_the_status_the_rules_give_then(aware, completed, interim, closed,
                                                                             now, probes):
    inv = InvestigationFacts(id=3, aware_at=aware, completed_at=completed, interim_assessed_at=interim)
    facts = CaseFacts(id=1, opened_at=at("2024-01-01 09:00"), closed_at=closed, investigations=(inv,))
    d = next(iter(compute_case_deadlines(facts, RulePolicy(), now)))
    timeline = replay(history(d.origin, now))
    assert timeline[-1][1] == d.status
    for t in probes:
        if aware <= t <= now:
            assert status_at(timeline, t) == settle(d.origin, t).status


def test_a_correction_rewrites_the_past_it_changes_and_the_log_replays_to_the_new_history():
    start, y, due, x = (at("2025-01-10 09:00"), at("2025-04-01 10:00"), at("2025-05-11 00:00"),
                        at("2025-06-02 14:00"))
    old = [(start, O), (y, M)]
    new = [(start, O), (due, B), (x, ML)]  # the completion was corrected to after the due time
    written = events_to_write(old, new)
    assert written == [(y, O), (due, B), (x, ML)]
    assert replay([*old, *written]) == new
    # Forward progress appends only what is new.
    assert events_to_write([(start, O)], new) == [(due, B), (x, ML)]
    assert events_to_write(new, new) == []


@hsettings(max_examples=200, deadline=None)
@given(old=st.lists(st.tuples(instants, st.sampled_from(list(Status))), max_size=5),
       new=st.lists(st.tuples(instants, st.sampled_from(list(Status))), min_size=1, max_size=5))
def test_replaying_the_written_events_after_the_old_ones_gives_the_new_history(old, new):
    def clean(points):
        out = []
        for t, s in sorted(dict(points).items()):
            if not out or out[-1][1] != s:
                out.append((t, s))
        return out
    old, new = clean(old), clean(new)
    got = replay([*old, *events_to_write(old, new)])
    for t in {t for t, _ in old + new}:
        if t >= new[0][0]:
            assert status_at(got, t) == status_at(new, t)


# --------------------------------------------------------------------------------------------
# End to end: a year lived versus a year imported later

def _municipality(session, prefix: str):
    from watchdog.demo_data import Scale, generate, populate

    m = generate(7, at("2026-01-01 00:00"), Scale(cases=40, caseworkers=4, teams=1))
    for row in (*m.teams, *m.workers, *m.absences, *m.cases, *m.notifications, *m.investigations,
                *m.measures, *m.follow_ups, *m.visits):
        if hasattr(row, "ext_id"):
            row.ext_id = f"{prefix}{row.ext_id}"
    for w in m.workers:
        w.email = f"{prefix.lower()}{w.email}"
    m.teams[0].name = prefix
    populate(session, m)
    session.commit()
    return [c.id for c in m.cases]


def _tables(report):
    return [(t.key, [(r.answer, r.count, r.percent) for r in t.rows], t.total) for t in report.tables]


def test_a_year_imported_today_reports_as_the_printouts_of_that_year_and_as_known_at_reproduces_them(session):
    lived = _municipality(session, "A")
    half, year = Period(date(2025, 1, 1), date(2025, 6, 30)), Period(date(2025, 1, 1), date(2025, 12, 31))
    printed = {}
    # The service lived through 2025: every case recomputed every morning, as a poll would after
    # each day's registrations; reports printed on 1 July and on 2 January.
    day = date(2025, 1, 1)
    while day <= date(2026, 1, 2):
        now = local_midnight(day) + timedelta(hours=6)
        refresh_deadlines(session, now=now, settings=SETTINGS, case_ids=lived)
        session.commit()
        if day in (date(2025, 7, 1), date(2026, 1, 2)):
            period = half if day.month == 7 else year
            printed[day] = (now, _tables(barometer_report(session, period, now=now, team="A")))
        day += timedelta(days=1)
    assert sum(total for _, _, total in printed[date(2026, 1, 2)][1]) > 20  # a year with real numbers

    # The same municipality's history imported on 1 December 2026, computed once.
    imported = _municipality(session, "B")
    refresh_deadlines(session, now=at("2026-12-01 10:00"), settings=SETTINGS, case_ids=imported)
    session.commit()
    later = at("2026-12-01 12:00")
    for day, period in ((date(2025, 7, 1), half), (date(2026, 1, 2), year)):
        printed_at, tables = printed[day]
        backfilled = barometer_report(session, period, now=later, team="B")
        assert _tables(backfilled) == tables, f"the backfill differs from the printout of {day}"
        assert backfilled.not_logged == 0
        assert _tables(barometer_report(session, period, now=later, team="A", known_at=printed_at)) == tables
    # The backfill wrote each deadline's history with the instants it happened: a breach at its due.
    breach = session.exec(select(OutcomeEvent).join(Deadline, Deadline.id == OutcomeEvent.deadline_id)
                          .join(Case, Case.id == Deadline.case_id).where(
        Case.id.in_(imported), OutcomeEvent.kind == OutcomeKind.STATUS,
        OutcomeEvent.to_status == Status.BREACHED)).first()
    assert breach is not None and breach.recorded_at == at("2026-12-01 10:00")
    assert breach.occurred_at == session.get(Deadline, breach.deadline_id).due


def test_as_known_at_before_the_import_shows_nothing_and_says_why_in_danish(session):
    ids = _municipality(session, "B")
    refresh_deadlines(session, now=at("2026-12-01 10:00"), settings=SETTINGS, case_ids=ids)
    session.commit()
    report = barometer_report(session, Period(date(2025, 1, 1), date(2025, 12, 31)), now=at("2026-12-02 10:00"),
                              known_at=at("2026-06-01 00:00"), as_of=at("2026-01-01 00:00"))
    assert all(t.total == 0 for t in report.tables) and report.not_logged > 0
    assert any("registrerede dem først efter 01-06-2026" in n for n in report.notes)


def test_a_corrected_completion_rewrites_the_history_and_the_earlier_printout_stays_reproducible(session):
    from watchdog.casestore import Investigation, Team

    team = Team(ext_id="T", name="T")
    session.add(team)
    session.flush()
    case = Case(ext_id="S-1", team_id=team.id, opened_at=at("2025-01-01 09:00"), facts_changed_at=at("2025-01-01 09:00"))
    session.add(case)
    session.flush()
    inv = Investigation(ext_id="I-1", case_id=case.id, aware_at=at("2025-01-10 09:00"), kind=InvestigationKind.NEW,
                        completed_at=at("2025-04-01 10:00"))
    session.add(inv)
    session.commit()
    refresh_deadlines(session, now=at("2025-06-01 08:00"), settings=SETTINGS, case_ids=[case.id])
    session.commit()
    period = Period(date(2025, 1, 1), date(2025, 5, 31))
    first = barometer_report(session, period, now=at("2025-06-01 09:00"))
    assert first.table("investigation_4m").count("Ja") == 1
    inv.completed_at = at("2025-06-02 14:00")  # the case system corrects the completion date
    session.add(inv)
    session.commit()
    refresh_deadlines(session, now=at("2025-06-10 08:00"), settings=SETTINGS, case_ids=[case.id])
    session.commit()
    now = barometer_report(session, period, now=at("2025-06-10 09:00"))
    assert now.table("investigation_4m").count("Nej") == 1
    again = barometer_report(session, period, now=at("2025-06-10 09:00"), known_at=at("2025-06-01 09:00"))
    assert _tables(again) == _tables(first)
