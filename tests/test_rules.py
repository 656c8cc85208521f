"""Worked examples for every duty under both regimes: (facts, now) → deadline. No database.

Local times (Europe/Copenhagen) are written without an offset: ``at("2024-03-30 23:30")``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from conftest import at
from watchdog.casestore import InvestigationKind, MeasureKind
from watchdog.rules.calendar import (
    BL_IN_FORCE, add_months_to_date, add_hverdage, is_hverdag, is_non_working_day, is_warning_day, regime_for,
)
from watchdog.rules.citations import CITATIONS, citation_for
from watchdog.rules.engine import RulePolicy, compute_case_deadlines
from watchdog.rules.facts import (
    CaseFacts, FollowUpFacts, InvestigationFacts, MeasureFacts, NotificationFacts, VisitFacts,
)
from watchdog.rules.types import ComputedDeadline, Duty, Regime, Status

POLICY = RulePolicy()
CASEWORKER, EARLIER_ASSESSOR, FRESH_EYES = 10, 11, 12


def case(**kw) -> CaseFacts:
    kw.setdefault("id", 1)
    kw.setdefault("opened_at", at("2020-01-01 09:00"))
    kw.setdefault("worker_id", CASEWORKER)
    return CaseFacts(**kw)


def only(facts: CaseFacts, duty: Duty, now: str | datetime, *, seq: int | None = None,
         policy: RulePolicy = POLICY) -> ComputedDeadline:
    now = at(now) if isinstance(now, str) else now
    found = [d for d in compute_case_deadlines(facts, policy, now)
             if d.duty == duty and (seq is None or d.seq == seq)]
    assert len(found) == 1, f"expected one {duty} deadline, got {found}"
    return found[0]


def none_of(facts: CaseFacts, duty: Duty, now: str = "2030-01-01 00:00") -> bool:
    return not [d for d in compute_case_deadlines(facts, POLICY, at(now)) if d.duty == duty]


# --------------------------------------------------------------------------------------------
# Counting

@pytest.mark.parametrize("start, months, expected", [
    (date(2024, 1, 31), 1, date(2024, 2, 29)),   # leap year
    (date(2023, 1, 31), 1, date(2023, 2, 28)),
    (date(2023, 10, 31), 4, date(2024, 2, 29)),
    (date(2024, 10, 31), 4, date(2025, 2, 28)),  # forældelsesloven § 27 method
    (date(2024, 1, 31), 3, date(2024, 4, 30)),
    (date(2024, 8, 31), 6, date(2025, 2, 28)),
    (date(2024, 3, 15), 4, date(2024, 7, 15)),
])
def test_calendar_months_land_on_the_same_day_or_the_last_day_of_a_shorter_month(start, months, expected):
    assert add_months_to_date(start, months) == expected


@pytest.mark.parametrize("start, count, expected, why", [
    (date(2024, 3, 27), 6, date(2024, 4, 9), "Easter 2024: skærtorsdag to 2. påskedag are not hverdage"),
    (date(2023, 12, 22), 6, date(2024, 1, 4), "Christmas 2023 and New Year's Day"),
    (date(2024, 12, 23), 6, date(2025, 1, 7), "FL § 27, stk. 2: 24, 25, 26, 31 December and 1 January are no hverdage"),
    (date(2024, 6, 3), 6, date(2024, 6, 12), "FL § 27, stk. 2: Grundlovsdag is no hverdag"),
    (date(2025, 6, 2), 6, date(2025, 6, 12), "Grundlovsdag (Thu 5 June) and 2. pinsedag (Mon 9 June) 2025"),
    (date(2025, 12, 19), 6, date(2026, 1, 5), "Christmas 2025: 22, 23, 29, 30 December, 2 and 5 January"),
    (date(2023, 5, 1), 6, date(2023, 5, 10), "Store bededag 2023 is a holiday"),
    (date(2024, 4, 22), 6, date(2024, 4, 30), "Store bededag is gone from 2024"),
    (date(2024, 5, 3), 1, date(2024, 5, 6), "Friday to Monday"),
])
def test_hverdage_skip_weekends_holidays_grundlovsdag_and_the_two_december_eves(start, count, expected, why):
    assert add_hverdage(start, count) == expected, why


def test_the_deadline_calendar_and_the_warning_calendar_skip_the_same_days_of_fl_27():
    for day in (date(2024, 6, 5), date(2024, 12, 24), date(2024, 12, 31), date(2024, 12, 25), date(2024, 6, 8)):
        assert not is_hverdag(day) and not is_warning_day(day) and is_non_working_day(day)
    for day in (date(2024, 6, 4), date(2024, 12, 23), date(2024, 12, 30)):
        assert is_hverdag(day) and is_warning_day(day) and not is_non_working_day(day)


@pytest.mark.parametrize("instant, regime", [
    (at("2023-12-31 23:59"), Regime.SEL),
    (at("2023-12-31 23:59:59.999999"), Regime.SEL),
    (at("2024-01-01 00:00"), Regime.BL),
    (at("2024-01-01 00:01"), Regime.BL),
    (datetime(2023, 12, 31, 23, 30, tzinfo=UTC), Regime.BL),  # 00:30 local on New Year's Day
])
def test_the_regime_is_chosen_by_the_local_instant_the_clock_started(instant, regime):
    assert regime_for(instant) == regime
    assert BL_IN_FORCE == datetime(2023, 12, 31, 23, 0, tzinfo=UTC)


def test_every_duty_has_a_citation_under_both_regimes():
    for duty in Duty:
        for regime in Regime:
            cited = citation_for(duty, regime)
            assert cited.text.startswith(regime.value + " §") and len(cited.text) <= 100
    assert {c.confidence for c in CITATIONS.values()} <= {"verbatim", "paraphrase", "unverified"}


# --------------------------------------------------------------------------------------------
# 24-hour assessment

@pytest.mark.parametrize("received, due, regime, citation, why", [
    (at("2023-06-10 14:00"), at("2023-06-11 14:00"), Regime.SEL, "SEL § 155, stk. 2", "an ordinary day"),
    (at("2024-03-30 23:30"), at("2024-04-01 00:30"), Regime.BL, "BL § 136", "spring: the night has 23 hours"),
    (at("2024-10-26 23:30"), at("2024-10-27 22:30"), Regime.BL, "BL § 136", "autumn: the night has 25 hours"),
    # 02:30 happens twice on 27 October 2024; the first (CEST) one is 00:30 UTC.
    (datetime(2024, 10, 27, 0, 30, tzinfo=UTC), datetime(2024, 10, 28, 0, 30, tzinfo=UTC), Regime.BL,
     "BL § 136", "received during the repeated hour"),
    (at("2023-03-25 23:30"), at("2023-03-27 00:30"), Regime.SEL, "SEL § 155, stk. 2", "spring 2023"),
    (at("2023-12-31 23:59"), at("2024-01-01 23:59"), Regime.SEL, "SEL § 155, stk. 2", "a minute before Barnets lov"),
    (at("2024-01-01 00:00"), at("2024-01-02 00:00"), Regime.BL, "BL § 136", "the first minute of Barnets lov"),
])
def test_the_24_hour_assessment_is_due_24_elapsed_hours_after_receipt(received, due, regime, citation, why):
    facts = case(notifications=(NotificationFacts(id=5, received_at=received),))
    d = only(facts, Duty.ASSESSMENT_24H, received)
    assert (d.due, d.regime, d.citation, d.clock_start) == (due, regime, citation, received), why
    assert d.status == Status.OPEN and d.responsible_worker_id == CASEWORKER
    assert (d.due - d.clock_start).total_seconds() == 24 * 3600
    assert d.key == "assessment_24h:notification:5:0"


@pytest.mark.parametrize("assessed, now, status", [
    ("2024-04-01 00:30", "2024-04-02 00:00", Status.MET),       # exactly at the due minute
    ("2024-04-01 00:31", "2024-04-02 00:00", Status.MET_LATE),
    (None, "2024-04-01 00:29", Status.OPEN),
    (None, "2024-04-01 00:30", Status.BREACHED),
    ("2024-04-01 08:00", "2024-04-01 07:00", Status.BREACHED),  # a fact dated after now has not happened
])
def test_the_24_hour_assessment_status(assessed, now, status):
    n = NotificationFacts(id=5, received_at=at("2024-03-30 23:30"), assessed_at=at(assessed) if assessed else None)
    d = only(case(notifications=(n,)), Duty.ASSESSMENT_24H, now)
    assert d.status == status
    assert d.met_at == (at(assessed) if status in (Status.MET, Status.MET_LATE) else None)


def test_a_case_closed_before_the_due_time_makes_an_unmet_duty_not_applicable():
    n = NotificationFacts(id=5, received_at=at("2024-05-02 10:00"))
    d = only(case(notifications=(n,), closed_at=at("2024-05-02 15:00")), Duty.ASSESSMENT_24H, "2024-05-10 00:00")
    assert d.status == Status.NOT_APPLICABLE and "closed" in d.note


# --------------------------------------------------------------------------------------------
# Reassessment by another worker (genvurdering)

def reassessment_case(received: str, participants: set[int], *, reassessed: str | None = "2024-05-06 10:00"):
    earlier = NotificationFacts(id=1, received_at=at("2023-02-01 10:00"), assessed_at=at("2023-02-01 12:00"),
                                assessed_by_id=EARLIER_ASSESSOR)
    now = NotificationFacts(id=2, received_at=at(received), child_in_support=True,
                            reassessed_at=at(reassessed) if reassessed else None,
                            reassessment_participant_ids=frozenset(participants))
    return case(notifications=(earlier, now))


@pytest.mark.parametrize("participants, status, note", [
    ({FRESH_EYES}, Status.MET, "from the notification"),
    ({CASEWORKER, FRESH_EYES}, Status.MET, "from the notification"),
    ({CASEWORKER}, Status.BREACHED, "has not worked on the case"),
    ({EARLIER_ASSESSOR}, Status.BREACHED, "has not worked on the case"),
    ({CASEWORKER, EARLIER_ASSESSOR}, Status.BREACHED, "has not worked on the case"),
    (set(), Status.BREACHED, "without participants"),
])
def test_a_reassessment_is_met_only_when_someone_new_to_the_case_took_part(participants, status, note):
    d = only(reassessment_case("2024-05-02 10:00", participants), Duty.REASSESSMENT, "2024-06-01 00:00")
    assert d.status == status
    assert d.met_at == (at("2024-05-06 10:00") if status == Status.MET else None)
    assert note in d.note


def test_a_reassessment_done_only_by_the_responsible_caseworker_stays_open_with_the_reason():
    d = only(reassessment_case("2024-05-02 10:00", {CASEWORKER}), Duty.REASSESSMENT, "2024-05-07 12:00")
    assert d.status == Status.OPEN and d.met_at is None
    assert "only by the responsible caseworker" in d.note


@pytest.mark.parametrize("received, days, due, regime, citation", [
    ("2024-05-02 10:00", 7, "2024-05-10 00:00", Regime.BL, "BL § 137, stk. 1"),
    ("2024-05-02 10:00", 3, "2024-05-06 00:00", Regime.BL, "BL § 137, stk. 1"),
    ("2023-12-29 16:00", 7, "2024-01-06 00:00", Regime.SEL, "SEL § 155 a, stk. 1"),
])
def test_the_reassessment_due_time_is_municipal_policy(received, days, due, regime, citation):
    d = only(reassessment_case(received, set(), reassessed=None), Duty.REASSESSMENT, received,
             policy=RulePolicy(reassessment_days=days))
    assert (d.due, d.regime, d.citation, d.municipal_policy) == (at(due), regime, citation, True)


def test_no_reassessment_for_a_child_not_in_support():
    facts = case(notifications=(NotificationFacts(id=2, received_at=at("2024-05-02 10:00")),))
    assert none_of(facts, Duty.REASSESSMENT)


def measure_running(kind: MeasureKind, effected: str | None, ended: str | None = None, basis: str = "") -> MeasureFacts:
    return MeasureFacts(id=7, kind=kind, decided_at=at("2024-02-20 10:00"), legal_basis=basis,
                        effected_at=at(effected) if effected else None, ended_at=at(ended) if ended else None)


@pytest.mark.parametrize("kind, basis, citation", [
    (MeasureKind.SUPPORT, "BL § 32", "BL § 137, stk. 1"),
    (MeasureKind.PLACEMENT_CONSENT, "BL § 46", "BL § 137, stk. 1"),
    (MeasureKind.PLACEMENT_NO_CONSENT, "BL § 47", "BL § 137, stk. 1"),
    (MeasureKind.YOUTH_CRIME, "", "BL § 137, stk. 1"),
])
def test_a_measure_effected_and_not_ended_at_the_receipt_raises_the_reassessment_without_the_flag(kind, basis, citation):
    # The export says nothing of support; the store has a measure effected 01-03-2024 and still
    # running when the underretning arrives 02-05-2024 10:00: BL § 137 applies, due by policy
    # (7 days) at the end of 09-05-2024, and the deadline says why it arose.
    facts = case(notifications=(NotificationFacts(id=2, received_at=at("2024-05-02 10:00")),),
                 measures=(measure_running(kind, "2024-03-01 09:00", basis=basis),))
    d = only(facts, Duty.REASSESSMENT, "2024-05-03 12:00")
    assert (d.due, d.citation, d.status) == (at("2024-05-10 00:00"), citation, Status.OPEN)
    assert "measure 7" in d.note and kind.value in d.note and "01-03-2024" in d.note
    assert basis in d.note


def test_a_support_measure_under_sel_52_raises_the_sel_155_a_reassessment():
    # Underretning 15-11-2023 (SEL regime), § 52 support effected 01-09-2023: SEL § 155 a, stk. 1.
    facts = case(notifications=(NotificationFacts(id=2, received_at=at("2023-11-15 10:00")),),
                 measures=(MeasureFacts(id=7, kind=MeasureKind.SUPPORT, decided_at=at("2023-08-20 10:00"),
                                        legal_basis="SEL § 52, stk. 3", effected_at=at("2023-09-01 09:00")),))
    d = only(facts, Duty.REASSESSMENT, "2023-11-16 12:00")
    assert (d.regime, d.citation, d.due) == (Regime.SEL, "SEL § 155 a, stk. 1", at("2023-11-23 00:00"))


@pytest.mark.parametrize("kind, effected, ended, why", [
    (MeasureKind.SUPPORT, "2024-05-03 09:00", None, "effected only after the receipt"),
    (MeasureKind.SUPPORT, None, None, "decided, never effected"),
    (MeasureKind.SUPPORT, "2024-01-10 09:00", "2024-04-30 00:00", "ended before the receipt"),
    (MeasureKind.SUPPORT, "2024-01-10 09:00", "2024-05-02 10:00", "ended at the receipt's minute"),
    (MeasureKind.OTHER, "2024-01-10 09:00", None, "a measure outside BL § 137"),
])
def test_no_reassessment_from_a_measure_that_was_not_running_at_the_receipt(kind, effected, ended, why):
    facts = case(notifications=(NotificationFacts(id=2, received_at=at("2024-05-02 10:00")),),
                 measures=(measure_running(kind, effected, ended),))
    assert none_of(facts, Duty.REASSESSMENT), why


def test_a_running_measure_wins_over_a_flag_that_says_no():
    # child_in_support is False on the notification (an explicit "nej" in the export looks the
    # same to the rules); the placement effected 01-02-2024 and not ended decides.
    n = NotificationFacts(id=2, received_at=at("2024-05-02 10:00"), child_in_support=False)
    facts = case(notifications=(n,), measures=(measure_running(MeasureKind.PLACEMENT_CONSENT, "2024-02-01 09:00"),))
    assert "placement_consent" in only(facts, Duty.REASSESSMENT, "2024-05-03 12:00").note


# --------------------------------------------------------------------------------------------
# Four-month investigation

@pytest.mark.parametrize("aware, due, regime, citation", [
    ("2023-10-31 11:00", "2024-03-01 00:00", Regime.SEL, "SEL § 50, stk. 7"),  # 29 February, leap year
    ("2024-10-31 11:00", "2025-03-01 00:00", Regime.BL, "BL § 20, stk. 3"),    # 28 February
    ("2023-01-31 09:00", "2023-06-01 00:00", Regime.SEL, "SEL § 50, stk. 7"),
    ("2023-12-31 23:59", "2024-05-01 00:00", Regime.SEL, "SEL § 50, stk. 7"),
    ("2024-01-01 00:00", "2024-05-02 00:00", Regime.BL, "BL § 20, stk. 3"),
])
def test_the_investigation_is_due_at_the_end_of_the_day_four_calendar_months_after_awareness(
        aware, due, regime, citation):
    facts = case(investigations=(InvestigationFacts(id=3, aware_at=at(aware)),))
    d = only(facts, Duty.INVESTIGATION_4M, aware)
    assert (d.due, d.regime, d.citation, d.clock_start) == (at(due), regime, citation, at(aware))


def test_an_interim_assessment_by_the_due_date_is_a_lawful_reason_and_tracking_continues():
    inv = InvestigationFacts(id=3, aware_at=at("2024-01-10 10:00"), interim_assessed_at=at("2024-05-10 15:00"))
    facts = case(investigations=(inv,))
    assert only(facts, Duty.INVESTIGATION_4M, "2024-05-10 20:00").status == Status.OPEN  # can still be met
    d = only(facts, Duty.INVESTIGATION_4M, "2024-05-11 00:00")
    assert d.status == Status.EXCEPTED and d.exception_reason.startswith("foreløbig vurdering 10-05-2024")
    finished = case(investigations=(InvestigationFacts(
        id=3, aware_at=inv.aware_at, interim_assessed_at=inv.interim_assessed_at,
        completed_at=at("2024-06-20 12:00")),))
    d = only(finished, Duty.INVESTIGATION_4M, "2024-07-01 00:00")
    assert d.status == Status.EXCEPTED and d.met_at == at("2024-06-20 12:00")


@pytest.mark.parametrize("interim, completed, now, status", [
    (None, "2024-05-10 23:59", "2024-06-01 00:00", Status.MET),
    (None, "2024-05-11 00:01", "2024-06-01 00:00", Status.MET_LATE),
    (None, None, "2024-05-11 00:00", Status.BREACHED),
    ("2024-05-11 09:00", None, "2024-06-01 00:00", Status.BREACHED),   # interim too late: no lawful reason
    ("2024-05-01 09:00", "2024-05-05 09:00", "2024-06-01 00:00", Status.MET),
])
def test_the_investigation_status(interim, completed, now, status):
    inv = InvestigationFacts(id=3, aware_at=at("2024-01-10 10:00"),
                             interim_assessed_at=at(interim) if interim else None,
                             completed_at=at(completed) if completed else None)
    assert only(case(investigations=(inv,)), Duty.INVESTIGATION_4M, now).status == status


def test_an_updated_investigation_has_no_four_month_deadline():
    inv = InvestigationFacts(id=3, aware_at=at("2024-01-10 10:00"), kind=InvestigationKind.UPDATE)
    assert none_of(case(investigations=(inv,)), Duty.INVESTIGATION_4M)


# --------------------------------------------------------------------------------------------
# Follow-up on a measure

def measure(**kw) -> MeasureFacts:
    kw.setdefault("id", 7)
    kw.setdefault("kind", MeasureKind.SUPPORT)
    kw.setdefault("decided_at", kw.get("effected_at") or at("2024-01-01 10:00"))
    return MeasureFacts(**kw)


def test_sel_follow_ups_come_3_months_after_effect_then_every_6_months():
    m = measure(effected_at=at("2023-03-15 10:00"), follow_ups=(
        FollowUpFacts(id=1, performed_at=at("2023-06-10 10:00")),))
    facts = case(measures=(m,))
    first = only(facts, Duty.FOLLOW_UP, "2023-11-01 00:00", seq=0)
    assert (first.due, first.status, first.citation) == (at("2023-06-16 00:00"), Status.MET, "SEL § 70, stk. 1")
    second = only(facts, Duty.FOLLOW_UP, "2023-11-01 00:00", seq=1)
    assert (second.clock_start, second.due, second.status) == (at("2023-06-10 10:00"), at("2023-12-11 00:00"),
                                                               Status.OPEN)
    assert second.regime == Regime.SEL and not second.municipal_policy


def test_bl_first_follow_up_from_31_january_lands_on_30_april():
    d = only(case(measures=(measure(effected_at=at("2024-01-31 10:00")),)), Duty.FOLLOW_UP, "2024-02-01 00:00")
    assert (d.due, d.citation, d.status) == (at("2024-05-01 00:00"), "BL § 95, stk. 2", Status.OPEN)


def test_bl_first_follow_up_is_due_at_the_completion_of_an_investigation_run_alongside_if_earlier():
    inv = InvestigationFacts(id=3, aware_at=at("2024-01-05 10:00"), completed_at=at("2024-03-20 14:00"))
    m = measure(effected_at=at("2024-01-31 10:00"), investigation_id=3)
    d = only(case(investigations=(inv,), measures=(m,)), Duty.FOLLOW_UP, "2024-02-01 00:00")
    assert d.due == at("2024-03-21 00:00") and "investigation" in d.note


def test_bl_later_follow_ups_are_due_at_the_date_planned_at_the_previous_one():
    m = measure(effected_at=at("2024-01-31 10:00"), follow_ups=(
        FollowUpFacts(id=1, performed_at=at("2024-04-20 10:00"), next_planned_on=date(2024, 10, 1)),))
    d = only(case(measures=(m,)), Duty.FOLLOW_UP, "2024-10-02 00:00", seq=1)
    assert (d.due, d.citation, d.status, d.municipal_policy) == (
        at("2024-10-02 00:00"), "BL § 95, stk. 3", Status.BREACHED, False)


def test_bl_later_follow_up_without_a_planned_date_falls_back_to_policy_and_says_so():
    m = measure(effected_at=at("2024-01-31 10:00"), follow_ups=(
        FollowUpFacts(id=1, performed_at=at("2024-04-20 10:00")),))
    d = only(case(measures=(m,)), Duty.FOLLOW_UP, "2024-05-01 00:00", seq=1)
    assert d.due == at("2024-10-21 00:00") and d.municipal_policy and "municipal policy" in d.note


def test_a_follow_up_chain_crosses_from_sel_to_bl_by_each_instance_clock_start():
    m = measure(effected_at=at("2023-09-01 10:00"), follow_ups=(
        FollowUpFacts(id=1, performed_at=at("2023-11-20 10:00")),
        FollowUpFacts(id=2, performed_at=at("2024-05-01 10:00"), next_planned_on=date(2024, 9, 1)),
    ))
    chain = [d for d in compute_case_deadlines(case(measures=(m,)), POLICY, at("2024-06-01 00:00"))
             if d.duty == Duty.FOLLOW_UP]
    assert [(d.seq, d.regime, d.status) for d in chain] == [
        (0, Regime.SEL, Status.MET), (1, Regime.SEL, Status.MET), (2, Regime.BL, Status.OPEN)]
    assert chain[1].due == at("2024-05-21 00:00") and chain[2].due == at("2024-09-02 00:00")


def test_a_follow_up_not_due_before_the_measure_ended_is_not_applicable():
    m = measure(effected_at=at("2024-01-31 10:00"), ended_at=at("2024-03-01 10:00"))
    d = only(case(measures=(m,)), Duty.FOLLOW_UP, "2024-06-01 00:00")
    assert d.status == Status.NOT_APPLICABLE


def test_a_measure_not_yet_effected_has_no_follow_up():
    assert none_of(case(measures=(measure(effected_at=None, decided_at=at("2024-01-01 10:00")),)), Duty.FOLLOW_UP)


# --------------------------------------------------------------------------------------------
# Receipt confirmation, child conversation, plan, supervision visits, aftercare

@pytest.mark.parametrize("received, due, regime, citation", [
    ("2024-03-27 10:00", "2024-04-10 00:00", Regime.BL, "BL § 138"),       # Easter
    ("2023-12-22 10:00", "2024-01-05 00:00", Regime.SEL, "SEL § 155 b, stk. 1"),  # Christmas, SEL
    # FL § 27, stk. 2: 24, 25, 26, 31 Dec and 1 Jan are no hverdage: 27, 30 Dec, 2, 3, 6, 7 Jan.
    ("2024-12-23 10:00", "2025-01-08 00:00", Regime.BL, "BL § 138"),
    # Grundlovsdag (Wed 5 June 2024) is no hverdag: 4, 6, 7, 10, 11, 12 June.
    ("2024-06-03 10:00", "2024-06-13 00:00", Regime.BL, "BL § 138"),
    # Grundlovsdag (Thu) and 2. pinsedag (Mon 9 June) 2025: 3, 4, 6, 10, 11, 12 June.
    ("2025-06-02 10:00", "2025-06-13 00:00", Regime.BL, "BL § 138"),
    # Christmas 2025 (received Friday 19 Dec): 22, 23, 29, 30 Dec, 2 and 5 Jan; it was due 31 Dec.
    ("2025-12-19 10:00", "2026-01-06 00:00", Regime.BL, "BL § 138"),
])
def test_receipt_confirmation_to_a_professional_notifier_within_6_hverdage(received, due, regime, citation):
    n = NotificationFacts(id=5, received_at=at(received), professional_notifier=True)
    d = only(case(notifications=(n,)), Duty.RECEIPT_CONFIRMATION, received)
    assert (d.due, d.regime, d.citation) == (at(due), regime, citation)
    assert none_of(case(notifications=(NotificationFacts(id=5, received_at=at(received)),)),
                   Duty.RECEIPT_CONFIRMATION)


@pytest.mark.parametrize("decided, talked, exemption, now, status, citation", [
    ("2024-03-01 10:00", "2024-02-20 10:00", None, "2024-03-02 00:00", Status.MET, "BL § 5, stk. 3-4"),
    ("2024-03-01 10:00", "2024-03-05 10:00", None, "2024-03-06 00:00", Status.MET_LATE, "BL § 5, stk. 3-4"),
    ("2024-03-01 10:00", None, "barnet er 2 år", "2024-03-06 00:00", Status.EXCEPTED, "BL § 5, stk. 3-4"),
    ("2024-03-01 10:00", None, None, "2024-03-06 00:00", Status.BREACHED, "BL § 5, stk. 3-4"),
    ("2024-03-01 10:00", None, None, "2024-02-01 00:00", Status.OPEN, "BL § 5, stk. 3-4"),  # decision planned
    ("2023-06-01 10:00", "2023-05-30 10:00", None, "2023-07-01 00:00", Status.MET, "SEL § 48"),
])
def test_the_child_conversation_comes_before_the_decision(decided, talked, exemption, now, status, citation):
    m = measure(decided_at=at(decided), child_conversation_at=at(talked) if talked else None,
                child_conversation_exemption=exemption)
    d = only(case(measures=(m,)), Duty.CHILD_CONVERSATION, now)
    assert (d.status, d.citation, d.due) == (status, citation, at(decided))
    assert d.exception_reason == (exemption if status == Status.EXCEPTED else None)


@pytest.mark.parametrize("kind, decided, birth, required, due, citation", [
    (MeasureKind.SUPPORT, "2023-05-31 10:00", None, True, "2023-10-01 00:00", "SEL § 140, stk. 1 (handleplan)"),
    (MeasureKind.PLACEMENT_CONSENT, "2024-11-30 10:00", None, True, "2025-03-01 00:00", "BL § 91 (barnets plan)"),
    (MeasureKind.PLACEMENT_NO_CONSENT, "2024-11-30 10:00", None, True, "2024-11-30 10:00",
     "BL § 91 (barnets plan)"),
    (MeasureKind.SUPPORT, "2024-02-15 10:00", None, True, "2024-05-16 00:00", "BL § 91 (barnets plan)"),
    (MeasureKind.SUPPORT, "2024-06-01 10:00", date(2008, 1, 1), True, "2024-09-02 00:00", "BL § 108 (ungeplan)"),
])
def test_the_plan_is_due_as_each_regime_and_measure_says(kind, decided, birth, required, due, citation):
    m = measure(kind=kind, decided_at=at(decided), plan_required=required)
    d = only(case(measures=(m,), birth_date=birth), Duty.PLAN, decided)
    assert (d.due, d.citation) == (at(due), citation)


def test_no_plan_when_the_bl_support_decision_says_none_is_needed():
    m = measure(kind=MeasureKind.SUPPORT, decided_at=at("2024-02-15 10:00"), plan_required=False)
    assert none_of(case(measures=(m,)), Duty.PLAN)


def test_a_placed_child_is_visited_at_least_every_6_months_with_a_conversation():
    m = measure(kind=MeasureKind.PLACEMENT_CONSENT, effected_at=at("2024-01-15 10:00"), visits=(
        VisitFacts(id=1, visited_at=at("2024-06-01 10:00")),
        VisitFacts(id=2, visited_at=at("2024-10-01 10:00"), child_conversation=False),
    ))
    chain = [d for d in compute_case_deadlines(case(measures=(m,)), POLICY, at("2025-01-01 00:00"))
             if d.duty == Duty.SUPERVISION_VISIT]
    assert [(d.seq, d.status, d.due) for d in chain] == [
        (0, Status.MET, at("2024-07-16 00:00")), (1, Status.BREACHED, at("2024-12-02 00:00"))]
    assert chain[0].citation == "BL § 156, stk. 5"
    sel = measure(kind=MeasureKind.PLACEMENT_NO_CONSENT, effected_at=at("2023-03-01 10:00"))
    assert only(case(measures=(sel,)), Duty.SUPERVISION_VISIT, "2023-04-01 00:00").citation == "SEL § 148"
    assert none_of(case(measures=(measure(effected_at=at("2024-01-15 10:00")),)), Duty.SUPERVISION_VISIT)


@pytest.mark.parametrize("birth, due, clock_start, regime", [
    (date(2007, 5, 10), "2024-11-11 00:00", "2024-05-10 00:00", Regime.BL),
    (date(2006, 3, 15), "2023-09-16 00:00", "2023-03-15 00:00", Regime.SEL),
    (date(2008, 2, 29), "2025-08-29 00:00", "2025-02-28 00:00", Regime.BL),  # born on a leap day
])
def test_the_aftercare_decision_is_due_6_months_before_the_18th_birthday(birth, due, clock_start, regime):
    m = measure(kind=MeasureKind.PLACEMENT_CONSENT, effected_at=at("2020-01-01 10:00"))
    d = only(case(birth_date=birth, measures=(m,)), Duty.AFTERCARE_DECISION, clock_start)
    assert (d.due, d.clock_start, d.regime) == (at(due), at(clock_start), regime)


def test_the_aftercare_decision_is_met_by_the_recorded_decision_and_needs_a_placement():
    m = measure(kind=MeasureKind.PLACEMENT_CONSENT, effected_at=at("2020-01-01 10:00"))
    met = case(birth_date=date(2007, 5, 10), measures=(m,), aftercare_decided_at=at("2024-11-01 10:00"))
    assert only(met, Duty.AFTERCARE_DECISION, "2025-01-01 00:00").status == Status.MET
    assert none_of(case(birth_date=date(2007, 5, 10), measures=(measure(effected_at=at("2020-01-01 10:00")),)),
                   Duty.AFTERCARE_DECISION)
    ended = MeasureFacts(id=7, kind=MeasureKind.PLACEMENT_CONSENT, decided_at=at("2020-01-01 10:00"),
                         effected_at=at("2020-01-01 10:00"), ended_at=at("2024-08-01 10:00"))
    assert only(case(birth_date=date(2007, 5, 10), measures=(ended,)), Duty.AFTERCARE_DECISION,
                "2025-01-01 00:00").status == Status.NOT_APPLICABLE
