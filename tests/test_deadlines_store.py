"""Persisting deadlines: refresh, poll, the outcome log. Real database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from conftest import at
from watchdog.casestore import (
    Case, FollowUp, Investigation, Measure, MeasureKind, Notification, ReassessmentParticipant, Team, Worker,
)
from watchdog.case_facts import load_case_facts
from watchdog.deadlines import Deadline, OutcomeEvent, OutcomeKind, record_alert_sent
from watchdog.recompute import poll_deadlines, refresh_deadlines
from watchdog.rules.types import Duty, Regime, Status
from watchdog.settings import load_settings

SETTINGS = load_settings()


@pytest.fixture
def world(session):
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    workers = [Worker(ext_id=f"W{i}", name=f"Worker {i}", email=f"w{i}@x.dk", team_id=team.id) for i in range(3)]
    session.add_all(workers)
    session.flush()
    return team, workers


def make_case(session, team, worker, ref, *, changed="2024-03-01 09:00", **kw) -> Case:
    case = Case(ext_id=ref, team_id=team.id, worker_id=worker.id, opened_at=at("2024-01-02 09:00"),
                facts_changed_at=at(changed), **kw)
    session.add(case)
    session.flush()
    return case


def deadlines_of(session, case_id=None) -> dict[str, Deadline]:
    query = select(Deadline)
    if case_id is not None:
        query = query.where(Deadline.case_id == case_id)
    return {d.key: d for d in session.exec(query)}


def events(session, kind=OutcomeKind.STATUS) -> list[OutcomeEvent]:
    return list(session.exec(select(OutcomeEvent).where(OutcomeEvent.kind == kind).order_by(OutcomeEvent.id)))


def test_first_refresh_writes_one_row_per_duty_and_a_creation_event_each(session, world):
    team, (w0, w1, w2) = world
    case = make_case(session, team, w0, "S-1")
    n = Notification(ext_id="N1", case_id=case.id, received_at=at("2024-03-30 23:30"), professional_notifier=True)
    session.add(n)
    session.flush()

    stats = refresh_deadlines(session, now=at("2024-03-31 12:00"), settings=SETTINGS)

    rows = deadlines_of(session)
    assert set(rows) == {f"assessment_24h:notification:{n.id}:0", f"receipt_confirmation:notification:{n.id}:0"}
    a = rows[f"assessment_24h:notification:{n.id}:0"]
    assert a.due == at("2024-04-01 00:30") and a.status == Status.OPEN and a.regime == Regime.BL
    assert a.citation == "BL § 136" and a.responsible_worker_id == w0.id
    assert stats.cases_recomputed == 1 and stats.deadlines_written == 2 and stats.status_changes == 2
    log = events(session)
    assert [(e.from_status, e.to_status) for e in log] == [(None, Status.OPEN), (None, Status.OPEN)]


def test_a_second_refresh_with_nothing_changed_writes_nothing(session, world):
    team, (w0, *_) = world
    case = make_case(session, team, w0, "S-1")
    session.add(Notification(ext_id="N1", case_id=case.id, received_at=at("2024-03-30 23:30")))
    session.flush()
    refresh_deadlines(session, now=at("2024-03-31 12:00"), settings=SETTINGS)
    again = refresh_deadlines(session, now=at("2024-03-31 12:05"), settings=SETTINGS)
    assert again.deadlines_written == 0 and again.status_changes == 0
    assert len(events(session)) == 1


def test_a_status_change_is_appended_to_the_log_and_the_old_event_is_kept(session, world):
    team, (w0, *_) = world
    case = make_case(session, team, w0, "S-1")
    n = Notification(ext_id="N1", case_id=case.id, received_at=at("2024-03-30 23:30"))
    session.add(n)
    session.flush()
    refresh_deadlines(session, now=at("2024-03-31 12:00"), settings=SETTINGS)
    refresh_deadlines(session, now=at("2024-04-01 01:00"), settings=SETTINGS)  # past due
    n.assessed_at = at("2024-04-01 08:00")
    session.add(n)
    session.flush()
    refresh_deadlines(session, now=at("2024-04-01 09:00"), settings=SETTINGS)

    row = next(iter(deadlines_of(session).values()))
    assert row.status == Status.MET_LATE and row.met_at == at("2024-04-01 08:00")
    log = events(session)
    assert [(e.from_status, e.to_status, e.recorded_at) for e in log] == [
        (None, Status.OPEN, at("2024-03-31 12:00")),
        (Status.OPEN, Status.BREACHED, at("2024-04-01 01:00")),
        (Status.BREACHED, Status.MET_LATE, at("2024-04-01 09:00")),
    ]
    assert all(e.deadline_id == row.id and e.deadline_key == row.key and e.duty == Duty.ASSESSMENT_24H for e in log)


def test_a_duty_that_no_longer_arises_becomes_not_applicable_and_is_never_deleted(session, world):
    team, (w0, *_) = world
    case = make_case(session, team, w0, "S-1")
    n = Notification(ext_id="N1", case_id=case.id, received_at=at("2024-05-02 10:00"), child_in_support=True)
    session.add(n)
    session.flush()
    refresh_deadlines(session, now=at("2024-05-02 11:00"), settings=SETTINGS)
    key = f"reassessment:notification:{n.id}:0"
    assert deadlines_of(session)[key].municipal_policy is True

    n.child_in_support = False  # a correction: the child was not in support after all
    session.add(n)
    session.flush()
    refresh_deadlines(session, now=at("2024-05-02 12:00"), settings=SETTINGS)

    row = deadlines_of(session)[key]
    assert row.status == Status.NOT_APPLICABLE and "no longer required" in row.note
    assert [(e.from_status, e.to_status) for e in events(session) if e.deadline_key == key] == [
        (None, Status.OPEN), (Status.OPEN, Status.NOT_APPLICABLE)]


def test_a_fact_change_without_a_status_change_updates_the_row_quietly(session, world):
    team, (w0, w1, _) = world
    case = make_case(session, team, w0, "S-1")
    session.add(Notification(ext_id="N1", case_id=case.id, received_at=at("2024-05-02 10:00")))
    session.flush()
    refresh_deadlines(session, now=at("2024-05-02 11:00"), settings=SETTINGS)
    case.worker_id = w1.id
    session.add(case)
    session.flush()
    stats = refresh_deadlines(session, now=at("2024-05-02 11:30"), settings=SETTINGS)
    assert stats.deadlines_written == 1 and stats.status_changes == 0
    session.expire_all()
    assert next(iter(deadlines_of(session).values())).responsible_worker_id == w1.id


def test_poll_recomputes_only_changed_cases_and_cases_whose_deadline_passed(session, world):
    team, (w0, *_) = world
    quiet = make_case(session, team, w0, "S-quiet", changed="2024-05-01 08:00")
    session.add(Notification(ext_id="Nq", case_id=quiet.id, received_at=at("2024-05-01 08:00")))
    session.flush()
    first = poll_deadlines(session, now=at("2024-05-01 09:00"), settings=SETTINGS)
    assert first.cases_recomputed == 1
    session.refresh(quiet)
    assert quiet.dirty is False  # its mark was cleared by the recompute that handled it

    nothing = poll_deadlines(session, now=at("2024-05-01 10:00"), settings=SETTINGS)
    assert (nothing.cases_recomputed, nothing.deadlines_written, nothing.status_changes) == (0, 0, 0)

    busy = make_case(session, team, w0, "S-busy", changed="2024-05-02 07:00")
    session.add(Notification(ext_id="Nb", case_id=busy.id, received_at=at("2024-05-02 07:00")))
    session.flush()
    # One poll: the new case because it changed, the quiet one because its 24 hours ran out.
    both = poll_deadlines(session, now=at("2024-05-02 09:00"), settings=SETTINGS)
    assert both.cases_recomputed == 2
    rows = {d.case_id: d.status for d in deadlines_of(session).values()}
    assert rows == {quiet.id: Status.BREACHED, busy.id: Status.OPEN}


def test_poll_takes_every_dirty_case_exactly_once_over_several_batches(session, world, monkeypatch):
    import watchdog.recompute as module

    monkeypatch.setattr(module, "BATCH_SIZE", 2)  # force several batches over equal timestamps
    monkeypatch.setattr(module, "RANGE_BATCH_SIZE", 2)
    team, (w0, *_) = world
    cases = [make_case(session, team, w0, f"S-{i}", changed="2024-05-01 08:00") for i in range(5)]
    for c in cases:
        session.add(Notification(ext_id=f"N{c.id}", case_id=c.id, received_at=at("2024-05-01 08:00")))
    session.flush()
    first = poll_deadlines(session, now=at("2024-05-01 09:00"), settings=SETTINGS)
    assert first.cases_recomputed == 5 and len(deadlines_of(session)) == 5
    later = make_case(session, team, w0, "S-late", changed="2024-05-01 08:00")  # same instant, higher id
    second = poll_deadlines(session, now=at("2024-05-01 09:30"), settings=SETTINGS)
    assert second.cases_recomputed == 1
    session.refresh(later)
    assert later.dirty is False
    third = poll_deadlines(session, now=at("2024-05-01 09:40"), settings=SETTINGS)
    assert third.cases_recomputed == 0


def test_record_alert_sent_appends_to_the_log(session, world):
    team, (w0, *_) = world
    case = make_case(session, team, w0, "S-1")
    session.add(Notification(ext_id="N1", case_id=case.id, received_at=at("2024-05-02 10:00")))
    session.flush()
    refresh_deadlines(session, now=at("2024-05-02 11:00"), settings=SETTINGS)
    row = next(iter(deadlines_of(session).values()))
    record_alert_sent(session, deadline_id=row.id, at=at("2024-05-02 11:01"), detail="email w0@x.dk: warn-4h")
    sent = events(session, OutcomeKind.ALERT_SENT)
    assert len(sent) == 1 and sent[0].deadline_key == row.key and sent[0].recorded_at == at("2024-05-02 11:01")
    with pytest.raises(LookupError, match="deadline 999999"):
        record_alert_sent(session, deadline_id=999999, at=at("2024-05-02 11:01"), detail=None)


def test_facts_are_loaded_in_bulk_with_everything_the_rules_need(session, world):
    team, (w0, w1, w2) = world
    case = make_case(session, team, w0, "S-1", birth_date=date(2010, 2, 28))
    n = Notification(ext_id="N1", case_id=case.id, received_at=at("2024-05-02 10:00"), child_in_support=True,
                     reassessed_at=at("2024-05-03 10:00"))
    session.add(n)
    session.flush()
    session.add(ReassessmentParticipant(notification_id=n.id, worker_id=w2.id))
    inv = Investigation(ext_id="I1", case_id=case.id, aware_at=at("2024-05-02 10:00"))
    session.add(inv)
    session.flush()
    m = Measure(ext_id="M1", case_id=case.id, kind=MeasureKind.SUPPORT, legal_basis="BL § 32",
                decided_at=at("2024-06-01 10:00"), effected_at=at("2024-06-10 10:00"), investigation_id=inv.id)
    session.add(m)
    session.flush()
    session.add(FollowUp(ext_id="F1", measure_id=m.id, performed_at=at("2024-09-01 10:00"),
                         next_planned_on=date(2025, 1, 15)))
    session.flush()

    facts = load_case_facts(session, [case.id, 424242])
    assert set(facts) == {case.id}
    f = facts[case.id]
    assert f.birth_date == date(2010, 2, 28) and f.worker_id == w0.id
    assert f.notifications[0].reassessment_participant_ids == frozenset({w2.id})
    assert f.investigations[0].id == inv.id
    assert f.measures[0].follow_ups[0].next_planned_on == date(2025, 1, 15)

    refresh_deadlines(session, now=at("2025-02-01 12:00"), settings=SETTINGS, case_ids=[case.id])
    rows = deadlines_of(session)
    assert rows[f"reassessment:notification:{n.id}:0"].status == Status.MET
    later = rows[f"follow_up:measure:{m.id}:1"]
    assert later.due == at("2025-01-16 00:00") and later.status == Status.BREACHED
    assert later.citation == "BL § 95, stk. 3"


def test_a_subject_moved_to_another_case_keeps_its_deadline_row(session, world):
    team, (w0, w1, _w2) = world
    first = make_case(session, team, w0, "S-1")
    second = make_case(session, team, w1, "S-2")
    inv = Investigation(ext_id="U1", case_id=first.id, aware_at=at("2024-03-01 09:00"))
    session.add(inv)
    session.flush()
    now = at("2024-03-02 09:00")
    refresh_deadlines(session, now=now, settings=SETTINGS, case_ids=[first.id, second.id])
    [before] = [d for d in deadlines_of(session).values() if d.duty == Duty.INVESTIGATION_4M]
    created = len(events(session))

    inv.case_id = second.id  # registered on the wrong case; moved
    session.add(inv)
    session.flush()
    stats = refresh_deadlines(session, now=now + timedelta(hours=1), settings=SETTINGS, case_ids=[second.id])
    session.expire_all()
    [after] = [d for d in deadlines_of(session).values() if d.duty == Duty.INVESTIGATION_4M]
    assert after.id == before.id and after.key == before.key  # the same row, not a second one
    assert after.case_id == second.id and after.responsible_worker_id == w1.id
    assert after.status == Status.OPEN and stats.deadlines_written == 1
    assert len(events(session)) == created  # no status change, no new creation event
    # The first case no longer has it, and does not mark it as gone.
    refresh_deadlines(session, now=now + timedelta(hours=2), settings=SETTINGS, case_ids=[first.id])
    session.expire_all()
    assert session.get(Deadline, before.id).status == Status.OPEN


def test_every_stored_fact_reaches_the_rules_in_its_own_field(session, world):
    """Each column set to a value of its own, so a fact loaded into a neighbouring field shows."""
    from watchdog.casestore import InvestigationKind, SupervisionVisit
    from watchdog.rules.facts import (
        CaseFacts, FollowUpFacts, InvestigationFacts, MeasureFacts, NotificationFacts, VisitFacts,
    )

    team, (w0, w1, w2) = world
    t = lambda day: at(f"2024-05-{day:02d} 10:00")  # noqa: E731
    case = make_case(session, team, w0, "S-1", birth_date=date(2010, 2, 28), closed_at=t(30),
                     aftercare_decided_at=t(29))
    later = Notification(ext_id="N2", case_id=case.id, received_at=t(3), professional_notifier=False,
                         child_in_support=False)
    n = Notification(ext_id="N1", case_id=case.id, received_at=t(2), professional_notifier=True,
                     assessed_at=t(4), assessed_by_id=w1.id, receipt_confirmed_at=t(5), child_in_support=True,
                     reassessed_at=t(6))
    session.add_all([later, n])
    session.flush()
    session.add(ReassessmentParticipant(notification_id=n.id, worker_id=w2.id))
    inv = Investigation(ext_id="I1", case_id=case.id, aware_at=t(7), kind=InvestigationKind.NEW,
                        completed_at=t(9), interim_assessed_at=t(8), notification_id=n.id)
    session.add(inv)
    session.flush()
    m = Measure(ext_id="M1", case_id=case.id, kind=MeasureKind.SUPPORT, legal_basis="BL § 32",
                decided_at=t(10), effected_at=t(11), ended_at=t(28), investigation_id=inv.id,
                child_conversation_at=t(12), child_conversation_exemption="barnets modenhed", plan_at=t(13),
                plan_required=False)
    session.add(m)
    session.flush()
    f1 = FollowUp(ext_id="F1", measure_id=m.id, performed_at=t(14), next_planned_on=date(2025, 1, 15))
    v1 = SupervisionVisit(ext_id="V1", measure_id=m.id, visited_at=t(15), child_conversation=False)
    session.add_all([f1, v1])
    session.flush()

    expected = CaseFacts(
        id=case.id, opened_at=case.opened_at, worker_id=w0.id, birth_date=date(2010, 2, 28), closed_at=t(30),
        aftercare_decided_at=t(29),
        notifications=(
            NotificationFacts(id=n.id, received_at=t(2), professional_notifier=True, assessed_at=t(4),
                              assessed_by_id=w1.id, receipt_confirmed_at=t(5), child_in_support=True,
                              reassessed_at=t(6), reassessment_participant_ids=frozenset({w2.id})),
            NotificationFacts(id=later.id, received_at=t(3)),
        ),
        investigations=(InvestigationFacts(id=inv.id, aware_at=t(7), kind=InvestigationKind.NEW,
                                           completed_at=t(9), interim_assessed_at=t(8), notification_id=n.id),),
        measures=(MeasureFacts(
            id=m.id, kind=MeasureKind.SUPPORT, decided_at=t(10), legal_basis="BL § 32", effected_at=t(11),
            ended_at=t(28), investigation_id=inv.id, child_conversation_at=t(12),
            child_conversation_exemption="barnets modenhed", plan_at=t(13), plan_required=False,
            follow_ups=(FollowUpFacts(id=f1.id, performed_at=t(14), next_planned_on=date(2025, 1, 15)),),
            visits=(VisitFacts(id=v1.id, visited_at=t(15), child_conversation=False),),
        ),),
    )
    assert load_case_facts(session, [case.id]) == {case.id: expected}
    # The full recompute's id-range reading gives the same.
    assert load_case_facts(session, [case.id], whole_range=True) == {case.id: expected}


def test_the_full_recompute_reports_its_progress_batch_by_batch(session, world, monkeypatch):
    import watchdog.recompute as module

    team, (w0, _w1, _w2) = world
    cases = [make_case(session, team, w0, f"S-{i}") for i in range(5)]
    for case in cases:
        session.add(Notification(ext_id=f"N-{case.id}", case_id=case.id, received_at=at("2024-03-01 09:00")))
    session.flush()
    monkeypatch.setattr(module, "RANGE_BATCH_SIZE", 2)
    seen = []
    stats = refresh_deadlines(session, now=at("2024-03-02 09:00"), settings=SETTINGS,
                              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert stats.cases_recomputed == 5 and len(deadlines_of(session)) == 5  # one 24-hour assessment each


def test_consecutive_case_ids_go_in_range_batches_and_the_rest_in_in_lists(monkeypatch):
    import watchdog.recompute as module

    monkeypatch.setattr(module, "RANGE_BATCH_SIZE", 4)
    monkeypatch.setattr(module, "BATCH_SIZE", 2)
    batches = [(list(batch), whole) for batch, whole in module._batches([1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 20, 21])]
    assert batches == [([1, 2, 3, 4], True), ([5, 6, 7, 8], True), ([10, 11], False), ([13, 20], False),
                       ([21], True)]
