"""Intake silence: leaders are told once when no notification has come in for N working days."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from conftest import at
from watchdog.casestore import Case, Notification, Team, Worker, WorkerRole
from watchdog.intake.silence import check_intake_silence, working_days_between
from watchdog.outbox import Alert, AlertKind
from watchdog.render import find_sensitive
from watchdog.settings import load_settings


@pytest.fixture
def settings():
    return load_settings(None, intake={"silence_working_days": 2})


def seed(session: Session, received_local: str) -> None:
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    session.add_all([
        Worker(ext_id="L1", name="Leder", email="leder@k.dk", role=WorkerRole.LEADER, team_id=team.id,
               teams_workflow_url="workflows://host/wf/sig"),
        Worker(ext_id="W1", name="Rådgiver", email="r@k.dk", team_id=team.id),
    ])
    case = Case(ext_id="S-010203-1234X", team_id=team.id, opened_at=at(received_local),
                facts_changed_at=at(received_local))
    session.add(case)
    session.flush()
    session.add(Notification(ext_id="U-1", case_id=case.id, received_at=at(received_local)))
    session.commit()


def test_working_days_skip_weekends_and_holidays():
    assert working_days_between(date(2024, 11, 29), date(2024, 12, 3)) == 1  # Fri → Tue: Monday
    # 23 and 27 December; 24 December and the Christmas holidays are not working days.
    assert working_days_between(date(2024, 12, 20), date(2024, 12, 30)) == 2


def test_leaders_are_alerted_once_per_silence_by_email_and_teams(session, settings):
    seed(session, "2024-11-29T15:00")  # a Friday
    assert check_intake_silence(session, now=at("2024-12-03T10:00"), settings=settings) == 0  # 1 day
    assert check_intake_silence(session, now=at("2024-12-04T10:00"), settings=settings) == 2
    assert check_intake_silence(session, now=at("2024-12-05T10:00"), settings=settings) == 0
    session.commit()
    alerts = session.exec(select(Alert)).all()
    assert {(a.kind, a.channel.value, a.recipient_address) for a in alerts} == {
        (AlertKind.INTAKE_SILENCE, "email", "leder@k.dk"),
        (AlertKind.INTAKE_SILENCE, "teams", "workflows://host/wf/sig")}
    assert "Ingen underretninger" in alerts[0].payload and not find_sensitive(alerts[0].payload)


def test_a_new_notification_ends_the_silence_and_a_later_one_alerts_again(session, settings):
    seed(session, "2024-11-29T15:00")
    assert check_intake_silence(session, now=at("2024-12-04T10:00"), settings=settings) == 2
    case = session.exec(select(Case)).one()
    session.add(Notification(ext_id="U-2", case_id=case.id, received_at=at("2024-12-04T11:00")))
    session.flush()
    assert check_intake_silence(session, now=at("2024-12-05T10:00"), settings=settings) == 0
    assert check_intake_silence(session, now=at("2024-12-09T10:00"), settings=settings) == 2


def test_outside_working_hours_the_alert_waits_for_the_morning(session, settings):
    seed(session, "2024-11-29T15:00")
    check_intake_silence(session, now=at("2024-12-04T22:00"), settings=settings)
    assert {a.send_after for a in session.exec(select(Alert))} == {at("2024-12-05T08:00")}


def test_an_empty_store_is_not_silence(session, settings):
    assert check_intake_silence(session, now=at("2024-12-04T10:00"), settings=settings) == 0
