"""The barometer: Ankestyrelsen's counts and percents from the outcome log, as of the period's end."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from report_helpers import Builder, due_on, ishoj_2023, local
from watchdog.casestore import InvestigationKind
from watchdog.reports import ReportInputError
from watchdog.reports.barometer import (
    I_ALT, JA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING, QUESTIONS, DeadlineRow, Period,
    barometer_report, compute_barometer, percent_of,
)
from watchdog.rules.types import Duty, Regime, Status

YEAR_2023 = Period(date(2023, 1, 1), date(2023, 12, 31))
LATER = local("2026-11-01T12:00")


@pytest.mark.parametrize("count,total,expected", [
    (1, 6, 17), (5, 6, 83), (3, 4, 75), (1, 4, 25), (3, 5, 60), (2, 5, 40), (9, 10, 90),
    (1, 8, 13), (3, 8, 38), (1, 15, 7), (12, 15, 80), (2, 15, 13), (11, 14, 79), (3, 14, 21),
    (0, 6, 0), (6, 6, 100), (1, 200, 1), (1, 201, 0),
])
def test_percent_is_a_whole_number_rounded_half_up_like_ankestyrelsen(count, total, expected):
    assert percent_of(count, total) == expected


def test_percent_of_no_cases_is_none_not_zero():
    assert percent_of(0, 0) is None


def test_rounded_percents_of_a_table_stay_within_half_a_point_per_answer_of_100():
    for total in range(1, 60):
        for a in range(total + 1):
            for b in range(total - a + 1):
                parts = [a, b, total - a - b]
                s = sum(percent_of(p, total) for p in parts)
                assert abs(s - 100) <= 1, (parts, s)


def row(i, duty, status, *, due="2023-06-01", case=None, seq=0, kind=None, reasoning=None):
    return DeadlineRow(deadline_id=i, case_id=case or i, case_ref=f"S-{i}", duty=duty, seq=seq,
                       regime=Regime.SEL, citation="SEL § 50, stk. 7", due=due_on(due), status=status,
                       investigation_kind=kind, reasoning_recorded=reasoning)


def test_status_maps_to_ankestyrelsens_answers_and_uncounted_statuses_are_left_out():
    rows = [row(1, Duty.INVESTIGATION_4M, Status.MET), row(2, Duty.INVESTIGATION_4M, Status.EXCEPTED),
            row(3, Duty.INVESTIGATION_4M, Status.MET_LATE), row(4, Duty.INVESTIGATION_4M, Status.BREACHED),
            row(5, Duty.INVESTIGATION_4M, Status.NOT_APPLICABLE),
            row(6, Duty.INVESTIGATION_4M, Status.OPEN, due="2023-12-31"),  # due at the very end: overdue as of it
            row(7, Duty.INVESTIGATION_4M, None)]  # nothing logged
    report = compute_barometer(rows, YEAR_2023, as_of=local("2023-07-01T00:00"))
    t = report.table("investigation_4m")
    # Row 6 is due after the as-of instant: not yet due, so not counted.
    assert [(r.answer, r.count, r.percent) for r in t.rows] == [
        (JA, 1, 25), (NEJ_LOVLIG, 1, 25), (NEJ, 2, 50)]
    assert t.total == 4
    assert report.not_logged == 1
    later = compute_barometer(rows, YEAR_2023, as_of=YEAR_2023.end_instant).table("investigation_4m")
    assert later.count(NEJ) == 3 and later.total == 5


def test_four_month_question_applies_only_to_new_investigations():
    rows = [row(1, Duty.INVESTIGATION_4M, Status.MET, kind=InvestigationKind.NEW),
            row(2, Duty.INVESTIGATION_4M, Status.BREACHED, kind=InvestigationKind.UPDATE)]
    t = compute_barometer(rows, YEAR_2023, as_of=LATER).table("investigation_4m")
    assert (t.count(JA), t.count(NEJ), t.total) == (1, 0, 1)


def test_a_case_with_several_deadlines_counts_once_by_its_first_deadline_in_the_period():
    rows = [row(1, Duty.ASSESSMENT_24H, Status.BREACHED, due="2023-09-01", case=7),
            row(2, Duty.ASSESSMENT_24H, Status.MET, due="2023-02-01", case=7),
            row(3, Duty.ASSESSMENT_24H, Status.NOT_APPLICABLE, due="2023-01-05", case=8),
            row(4, Duty.ASSESSMENT_24H, Status.BREACHED, due="2023-03-05", case=8)]
    t = compute_barometer(rows, YEAR_2023, as_of=LATER).table("assessment_24h")
    assert (t.count(JA), t.count(NEJ), t.total) == (1, 1, 2)


def test_reassessment_answers_follow_the_recorded_reasoning():
    rows = [row(1, Duty.REASSESSMENT, Status.MET, reasoning=True),
            row(2, Duty.REASSESSMENT, Status.MET, reasoning=False),
            row(3, Duty.REASSESSMENT, Status.MET_LATE, reasoning=None),
            row(4, Duty.REASSESSMENT, Status.BREACHED)]
    t = compute_barometer(rows, YEAR_2023, as_of=LATER).table("reassessment")
    assert [(r.answer, r.count) for r in t.rows] == [(JA, 2), (NEJ_VURDERING, 1), (NEJ_GENVURDERING, 1)]


def test_monthly_trend_sums_to_the_table_and_gives_each_months_rate():
    rows = [row(1, Duty.INVESTIGATION_4M, Status.MET, due="2023-01-31"),
            row(2, Duty.INVESTIGATION_4M, Status.BREACHED, due="2023-01-15"),
            row(3, Duty.INVESTIGATION_4M, Status.MET, due="2023-03-01"),
            row(4, Duty.INVESTIGATION_4M, Status.MET, due="2023-03-02")]
    t = compute_barometer(rows, Period(date(2023, 1, 1), date(2023, 3, 31)), as_of=LATER).table("investigation_4m")
    assert [(p.month, p.total, p.ja, p.percent) for p in t.trend] == [
        ("2023-01", 2, 1, 50), ("2023-02", 0, 0, None), ("2023-03", 2, 2, 100)]
    assert sum(p.total for p in t.trend) == t.total


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(ReportInputError, match="before it starts"):
        Period(date(2024, 2, 1), date(2024, 1, 1))


def test_ishoj_2023_tables_are_reproduced_from_the_outcome_log(session):
    ishoj_2023(session)
    report = barometer_report(session, YEAR_2023, now=LATER, municipality="Ishøj Kommune")
    assert report.as_of == YEAR_2023.end_instant

    def shown(key):
        t = report.table(key)
        return [(r.answer, r.count, r.percent) for r in t.rows] + [(I_ALT, t.total)]

    assert shown("investigation_4m") == [(JA, 1, 17), (NEJ_LOVLIG, 0, 0), (NEJ, 5, 83), (I_ALT, 6)]
    assert shown("assessment_24h") == [(JA, 4, 100), (NEJ, 0, 0), (I_ALT, 4)]
    assert shown("reassessment") == [(JA, 3, 75), (NEJ_VURDERING, 0, 0), (NEJ_GENVURDERING, 1, 25), (I_ALT, 4)]
    assert shown("follow_up") == [(JA, 3, 60), (NEJ, 2, 40), (I_ALT, 5)]
    assert shown("follow_up_later") == [(JA, 0, 0), (NEJ, 1, 100), (I_ALT, 1)]
    t = report.table("investigation_4m")
    assert "SEL § 50, stk. 7" in t.question and t.citation == "SEL § 50, stk. 7"
    assert report.not_logged == 1  # the follow-up logged only in 2024


def test_a_later_as_of_counts_what_was_logged_after_the_period(session):
    ishoj_2023(session)
    report = barometer_report(session, YEAR_2023, now=LATER, as_of=local("2024-03-01T00:00"))
    assert report.table("follow_up").total == 6 and report.table("follow_up").count(JA) == 6 - 2
    # The four-month deadline due 31 December was breached then met late: still "Nej".
    assert report.table("investigation_4m").count(NEJ) == 5


def test_the_same_past_period_gives_the_same_numbers_after_the_log_moves_on(session):
    team = ishoj_2023(session)
    before = barometer_report(session, YEAR_2023, now=LATER)
    b = Builder(session)
    case = b.case(team)
    # A 2023 deadline first logged in 2025, and a change to a counted one logged after the period.
    b.deadline(case, Duty.ASSESSMENT_24H, due=local("2023-05-05T10:00"), history=[(local("2025-01-01"), Status.BREACHED)])
    session.commit()
    after = barometer_report(session, YEAR_2023, now=LATER + timedelta(days=400))
    assert [t.rows for t in after.tables] == [t.rows for t in before.tables]


def test_team_filter_counts_only_that_teams_cases_and_an_unknown_team_is_refused(session):
    ishoj_2023(session)
    b = Builder(session)
    other = b.team("UNG", "Ungeteamet")
    b.outcome(b.case(other), Duty.INVESTIGATION_4M, "2023-05-05", Status.MET)
    session.commit()
    assert barometer_report(session, YEAR_2023, now=LATER).table("investigation_4m").total == 7
    ung = barometer_report(session, YEAR_2023, now=LATER, team="UNG")
    assert ung.team == "Ungeteamet" and ung.table("investigation_4m").total == 1
    assert barometer_report(session, YEAR_2023, now=LATER, team="Familierådgivningen").table("investigation_4m").total == 6
    with pytest.raises(ReportInputError, match="unknown team 'NOPE'.*FAM"):
        barometer_report(session, YEAR_2023, now=LATER, team="NOPE")


def test_every_tracked_duty_has_a_table():
    assert {q.duty for q in QUESTIONS} == set(Duty)


def test_each_table_shows_ankestyrelsens_national_figure_for_its_year_with_a_source_and_nothing_for_missing_years():
    from watchdog.reports.national import FIGURES

    report = compute_barometer([], YEAR_2023, as_of=LATER)
    assert [f.label for f in report.table("investigation_4m").national] == ["Landsplan 2023: 34 %"]
    assert [f.label for f in report.table("assessment_24h").national] == ["Landsplan 2023: 96 %"]
    assert report.table("follow_up").national == ()  # no 2023 figure: nothing, never a guess
    assert report.table("reassessment").national == ()
    both = compute_barometer([], Period(date(2023, 1, 1), date(2024, 12, 31)), as_of=LATER)
    assert [f.label for f in both.table("investigation_4m").national] == ["Landsplan 2023: 34 %", "Landsplan 2024: 50 %"]
    assert [f.label for f in both.table("follow_up").national] == ["Landsplan 2024: 75 %"]
    assert compute_barometer([], Period(date(2019, 1, 1), date(2019, 12, 31)), as_of=LATER).table(
        "investigation_4m").national == ()
    assert all(f.source.url.startswith("https://") and f.source.title and f.source.publisher for f in FIGURES)


def test_the_month_not_yet_over_is_marked_provisional_in_the_trend():
    rows = [row(1, Duty.INVESTIGATION_4M, Status.MET, due="2024-11-05")]
    report = compute_barometer(rows, Period(date(2024, 1, 1), date(2024, 12, 31)), as_of=local("2024-11-10T12:00"))
    trend = {p.month: p for p in report.table("investigation_4m").trend}
    assert trend["2024-11"].partial and trend["2024-11"].percent == 100 and trend["2024-12"].partial
    assert not trend["2024-10"].partial
