"""Alerts end to end: case store → deadlines → planning → outbox → Apprise → a real SMTP server
(aiosmtpd) and a real HTTPS Teams-workflow receiver, on SQLite and on PostgreSQL.

Time is simulated by passing ``now`` to ``service.poll`` / ``delivery_round.deliver``; only the servers
are live. Every message the servers receive is scanned for CPR-like numbers.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from fixtures_servers import settings_for
from watchdog import delivery_round, outbox, service
from watchdog.casestore import Absence, Case, Investigation, Notification, Team, Worker, WorkerRole
from watchdog.deadlines import Deadline, OutcomeEvent, OutcomeKind
from watchdog.delivery import Transport
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, DeliveryAttempt, NewAlert
from watchdog.render import DUTY_NAMES_DA, find_sensitive
from watchdog.rules.types import Duty

from conftest import at

ANNE = "anne@kommune.example.dk"
BO = "bo@kommune.example.dk"
CARL = "carl@kommune.example.dk"
LISE = "lise@kommune.example.dk"
RITA = "rita@kommune.example.dk"
OPS = "drift@kommune.example.dk"

AWARE = at("2025-03-04T11:00")  # an investigation due at the end of Friday 4 July 2025


class Town:
    """One team: caseworkers Anne and Carl, substitute Bo, leader Lise, reviewer Rita."""

    def __init__(self, session: Session, *, leader_teams_url: str | None = None):
        self.session = session
        self.team = Team(ext_id="T1", name="Team Nord")
        session.add(self.team)
        session.flush()
        self.workers = {}
        for ext_id, name, email, role, teams in (
            ("W1", "Anne Rådgiver", ANNE, WorkerRole.CASEWORKER, None),
            ("W2", "Bo Vikar", BO, WorkerRole.CASEWORKER, None),
            ("W3", "Carl Rådgiver", CARL, WorkerRole.CASEWORKER, None),
            ("L1", "Lise Leder", LISE, WorkerRole.LEADER, leader_teams_url),
            ("R1", "Rita Genvurdering", RITA, WorkerRole.REVIEWER, None),
        ):
            worker = Worker(ext_id=ext_id, name=name, email=email, role=role, teams_workflow_url=teams,
                            team_id=self.team.id)
            session.add(worker)
            self.workers[ext_id] = worker
        session.flush()

    def case(self, ref: str, worker: str = "W1") -> Case:
        case = Case(ext_id=ref, team_id=self.team.id, worker_id=self.workers[worker].id, opened_at=AWARE,
                    facts_changed_at=AWARE)
        self.session.add(case)
        self.session.flush()
        return case

    def investigation(self, ref: str, worker: str = "W1", aware: datetime = AWARE) -> Case:
        case = self.case(ref, worker)
        self.session.add(Investigation(ext_id=f"U-{ref}", case_id=case.id, aware_at=aware))
        self.session.flush()
        return case


def rounds(engine, settings, transport, *instants: datetime) -> None:
    for now in instants:
        service.poll(engine, settings, now=now, replica="e2e")
        delivery_round.deliver(engine, settings, now=now, transport=transport, worker_name="e2e")


def deadline_mails(session: Session, smtp_server, address: str):
    """The mails to ``address`` that carry deadline alerts: not the weekly digest or the intake
    check, which the same poll sends to leaders (their subjects are stored on their outbox rows)."""
    session.expire_all()
    others = {outbox.payload_of(a).get("subject") for a in session.exec(
        select(Alert).where(Alert.deadline_id.is_(None))).all()}
    return [m for m in smtp_server.to(address) if str(m.message["Subject"]) not in others]


def the_warning(session: Session) -> Alert:
    session.expire_all()
    return session.exec(select(Alert).where(Alert.deadline_id.is_not(None))).one()


def assert_nothing_sensitive(smtp_server, teams_receiver=None) -> None:
    """Invariant 5: no CPR-like number in anything that left the service (there is no child's name
    in the store at all: a child is known by the case reference only)."""
    for mail in smtp_server.messages:
        blob = "\n".join([str(mail.message["Subject"]), mail.text, mail.html])
        assert find_sensitive(blob) == [], blob
    for post in (teams_receiver.posts if teams_receiver else []):
        blob = json.dumps(post.body, ensure_ascii=False)
        assert find_sensitive(blob) == [], blob


@pytest.mark.slow  # 8–16 s: about forty simulated days of poll and delivery rounds
def test_a_cases_full_ladder_arrives_once_each_in_order_and_the_leader_gets_the_escalation(
        engine, session, smtp_server, teams_receiver):
    town = Town(session, leader_teams_url=teams_receiver.url)
    town.investigation("S-1001")
    session.commit()
    settings = settings_for(smtp_server)
    transport = Transport(settings)
    arrivals: list[tuple[date, str, str]] = []
    day = date(2025, 5, 30)
    rounds(engine, settings, transport, at("2025-03-04T12:00"))
    stage_days = {date(2025, 6, 4), date(2025, 6, 20), date(2025, 6, 27), date(2025, 7, 3), date(2025, 7, 7)}
    while day <= date(2025, 7, 9):
        # Every morning; on the days something is sent, again in the afternoon, which must add nothing.
        for hour in ("09:00", "15:00") if day in stage_days else ("09:00",):
            now = at(f"{day.isoformat()}T{hour}")
            rounds(engine, settings, transport, now)
            sent = session.exec(select(Alert).where(Alert.deadline_id.is_not(None), Alert.sent_at == now)
                                .order_by(Alert.id)).all()
            arrivals += [(day, hour, a.recipient_address) for a in sent]
        day += timedelta(days=1)
    assert arrivals == [
        (date(2025, 6, 4), "09:00", ANNE),  # 30 days before; 5 June (Grundlovsdag) is off
        (date(2025, 6, 20), "09:00", ANNE),  # 14 days before falls on a Saturday → Friday
        (date(2025, 6, 27), "09:00", ANNE),  # 7 days before: Saturday → Friday
        (date(2025, 7, 3), "09:00", ANNE),  # 2 days before
        (date(2025, 7, 7), "09:00", LISE),  # breached at the end of Friday 4 July: Monday morning
        (date(2025, 7, 7), "09:00", teams_receiver.url),
        (date(2025, 7, 7), "09:00", ANNE),  # and the caseworker's first reminder (one day after)
    ]
    # What the servers got: Anne four warnings and a reminder; Lise one escalation by email and
    # one on Teams (besides the weekly digests and the intake check, not this test's business).
    assert len(smtp_server.to(ANNE)) == 5
    for mail in smtp_server.to(ANNE):
        assert "S-1001" in mail.text
    (escalation,) = deadline_mails(session, smtp_server, LISE)
    assert "S-1001" in escalation.text
    cards = [json.dumps(p.card, ensure_ascii=False) for p in teams_receiver.posts]
    assert len([c for c in cards if "S-1001" in c and "Ugeoversigt" not in c]) == 1
    alerts = session.exec(select(Alert).where(Alert.deadline_id.is_not(None)).order_by(Alert.sent_at, Alert.id)).all()
    assert [(a.stage, a.state) for a in alerts] == [
        ("before_30d", AlertState.SENT), ("before_14d", AlertState.SENT), ("before_7d", AlertState.SENT),
        ("before_2d", AlertState.SENT), ("breach", AlertState.SENT), ("breach", AlertState.ACCEPTED),
        ("reminder_1d", AlertState.SENT),
    ]
    logged = session.exec(select(func.count()).select_from(OutcomeEvent)
                          .where(OutcomeEvent.kind == OutcomeKind.ALERT_SENT)).one()
    assert logged == 7
    assert_nothing_sensitive(smtp_server, teams_receiver)


def test_a_caseworker_with_five_due_warnings_gets_one_message_listing_all_five(engine, session, smtp_server):
    town = Town(session)
    refs = [f"S-20{i}" for i in range(5)]
    for i, ref in enumerate(refs):
        town.investigation(ref, aware=AWARE + timedelta(minutes=i))
    session.commit()
    settings = settings_for(smtp_server)
    rounds(engine, settings, Transport(settings), at("2025-06-04T09:00"))
    (mail,) = smtp_server.to(ANNE)
    for ref in refs:
        assert ref in mail.text
    assert session.exec(select(func.count()).select_from(Alert).where(
        Alert.deadline_id.is_not(None), Alert.state == AlertState.SENT)).one() == 5
    assert_nothing_sensitive(smtp_server)


def test_an_absent_caseworkers_warnings_go_to_the_substitute_or_else_the_leader(engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-301", worker="W1")
    town.investigation("S-302", worker="W3")
    session.add(Absence(ext_id="A1", worker_id=town.workers["W1"].id, starts_on=date(2025, 6, 2),
                        ends_on=date(2025, 6, 13), substitute_id=town.workers["W2"].id))
    session.add(Absence(ext_id="A2", worker_id=town.workers["W3"].id, starts_on=date(2025, 6, 2),
                        ends_on=date(2025, 6, 13)))
    session.commit()
    settings = settings_for(smtp_server)
    rounds(engine, settings, Transport(settings), at("2025-06-04T09:00"))
    assert smtp_server.to(ANNE) == [] and smtp_server.to(CARL) == []
    (to_bo,) = smtp_server.to(BO)
    (to_lise,) = deadline_mails(session, smtp_server, LISE)
    assert "S-301" in to_bo.text and "S-302" not in to_bo.text
    assert "S-302" in to_lise.text and "S-301" not in to_lise.text
    assert "Carl Rådgiver" in to_lise.text  # the leader learns whose case it is
    assert_nothing_sensitive(smtp_server)


def test_reviewers_get_the_reassessment_warning_as_well_as_the_caseworker(engine, session, smtp_server):
    town = Town(session)
    case = town.case("S-401")
    received = at("2025-03-05T10:00")
    session.add(Notification(ext_id="N-401", case_id=case.id, received_at=received, child_in_support=True))
    session.commit()
    settings = settings_for(smtp_server, alerts={"reviewers": ["R1"]})
    rounds(engine, settings, Transport(settings), received + timedelta(minutes=5))
    (to_rita,) = smtp_server.to(RITA)
    (to_anne,) = smtp_server.to(ANNE)  # the 24-hour and the reassessment warning, in one message
    assert "S-401" in to_rita.text
    assert DUTY_NAMES_DA[Duty.REASSESSMENT] in to_rita.text
    assert DUTY_NAMES_DA[Duty.ASSESSMENT_24H] not in to_rita.text
    assert DUTY_NAMES_DA[Duty.REASSESSMENT] in to_anne.text and DUTY_NAMES_DA[Duty.ASSESSMENT_24H] in to_anne.text
    assert_nothing_sensitive(smtp_server)


def test_smtp_down_then_back_delivers_the_alert_later_exactly_once(engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-501")
    session.commit()
    settings = settings_for(smtp_server, delivery={"backoff_base_seconds": 60})
    transport = Transport(settings)
    t0 = at("2025-06-04T09:00")
    smtp_server.stop()
    rounds(engine, settings, transport, t0)
    alert = the_warning(session)
    assert alert.state == AlertState.PENDING and alert.attempts == 1
    assert alert.next_attempt_at == t0 + timedelta(seconds=60)
    assert alert.last_error
    smtp_server.start()
    delivery_round.deliver(engine, settings, now=t0 + timedelta(seconds=30), transport=transport, worker_name="e2e")
    assert smtp_server.to(ANNE) == []  # the retry is not due yet
    for seconds in (61, 62, 120):
        delivery_round.deliver(engine, settings, now=t0 + timedelta(seconds=seconds), transport=transport,
                               worker_name="e2e")
    assert len(smtp_server.to(ANNE)) == 1
    session.expire_all()
    alert = session.get(Alert, alert.id)
    assert (alert.state, alert.attempts) == (AlertState.SENT, 2)
    attempts = session.exec(select(DeliveryAttempt).where(DeliveryAttempt.alert_id == alert.id)
                            .order_by(DeliveryAttempt.id)).all()
    assert [a.ok for a in attempts] == [False, True]
    assert [a.at for a in attempts] == [t0, t0 + timedelta(seconds=61)]


def test_a_process_stopped_between_claim_and_send_is_delivered_once_after_the_claim_expires(
        engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-601")
    session.commit()
    settings = settings_for(smtp_server, delivery={"claim_timeout_seconds": 300})
    transport = Transport(settings)
    t0 = at("2025-06-04T09:00")
    service.poll(engine, settings, now=t0, replica="e2e")
    with Session(engine) as s:  # the crashed process: it claimed, then died before sending
        claimed = outbox.claim_due(s, now=t0, worker_name="crashed", claim_seconds=300, limit=10)
        assert the_warning(session).id in {a.id for a in claimed}
    delivery_round.deliver(engine, settings, now=t0 + timedelta(seconds=299), transport=transport, worker_name="e2e")
    assert smtp_server.messages == []
    for seconds in (301, 302, 900):
        delivery_round.deliver(engine, settings, now=t0 + timedelta(seconds=seconds), transport=transport,
                               worker_name="e2e")
    assert len(smtp_server.to(ANNE)) == 1
    (attempt,) = session.exec(select(DeliveryAttempt).where(
        DeliveryAttempt.alert_id == the_warning(session).id)).all()
    assert attempt.ok and attempt.worker == "e2e"


def test_a_permanent_failure_is_a_dead_letter_and_the_operator_is_told(engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-701")
    session.commit()
    smtp_server.reject_addresses[ANNE] = "550 5.1.1 No such user"
    settings = settings_for(smtp_server, delivery={"ops_urls": [f"mailto://{OPS}"]})
    t0 = at("2025-06-04T09:00")
    rounds(engine, settings, Transport(settings), t0)
    dead = the_warning(session)
    assert dead.state == AlertState.DEAD
    assert dead.kind == AlertKind.WARNING and "550" in (dead.last_error or "")
    (to_ops,) = smtp_server.to(OPS)
    assert f"alert {dead.id}" in to_ops.text
    ops_alert = session.exec(select(Alert).where(Alert.kind == AlertKind.OPS)).one()
    assert ops_alert.state == AlertState.SENT
    # Fixed and retried by hand: it goes out, once.
    smtp_server.reject_addresses.clear()
    with Session(engine) as s:
        assert outbox.retry(s, now=t0 + timedelta(hours=1), alert_ids=[dead.id]) == 1
        s.commit()
    delivery_round.deliver(engine, settings, now=t0 + timedelta(hours=1), transport=Transport(settings), worker_name="e2e")
    assert len(smtp_server.to(ANNE)) == 1
    assert_nothing_sensitive(smtp_server)


@pytest.mark.postgres_only
@pytest.mark.slow  # ~30 s on a shared machine: 500 alerts through two workers and a real SMTP server
def test_two_delivery_workers_in_parallel_never_send_the_same_alert_twice(
        engine, engine_factory, on_postgres, session, smtp_server):
    if not on_postgres:
        pytest.skip("needs PostgreSQL (WATCHDOG_TEST_DATABASE_URL)")
    # 500 investigations (100 cases × 5) of 20 caseworkers, all 30 days from due on 4 June.
    team = Team(ext_id="T1", name="Team Nord")
    session.add(team)
    session.flush()
    workers = [Worker(ext_id=f"W{i}", name=f"Rådgiver {i}", email=f"w{i}@kommune.example.dk", team_id=team.id)
               for i in range(20)]
    session.add_all(workers)
    session.flush()
    for c in range(100):
        case = Case(ext_id=f"S-{9000 + c}", team_id=team.id, worker_id=workers[c % 20].id, opened_at=AWARE,
                    facts_changed_at=AWARE)
        session.add(case)
        session.flush()
        session.add_all(Investigation(ext_id=f"U-{c}-{k}", case_id=case.id, aware_at=AWARE + timedelta(minutes=k))
                        for k in range(5))
    session.commit()
    t0 = at("2025-06-04T09:00")
    # Lists long enough for a caseworker's 25 warnings, so that every case can be seen in the mails.
    settings = settings_for(smtp_server, delivery={"batch_size": 30}, alerts={"max_items_per_section": 30})
    service.poll(engine, settings, now=t0, replica="planner")
    warnings = session.exec(select(func.count()).select_from(Alert).where(Alert.kind == AlertKind.WARNING)).one()
    assert warnings == 500
    reports = {}

    def worker(name: str) -> None:
        reports[name] = delivery_round.deliver(engine_factory(), settings, now=t0, transport=Transport(settings),
                                               worker_name=name)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert reports["w1"].claimed > 0 and reports["w2"].claimed > 0  # both really worked
    assert reports["w1"].claimed + reports["w2"].claimed == 500
    session.expire_all()
    warning_ids = set(session.exec(select(Alert.id).where(Alert.kind == AlertKind.WARNING)).all())
    attempts = session.exec(select(DeliveryAttempt).where(DeliveryAttempt.alert_id.in_(warning_ids))).all()
    assert len(attempts) == 500 and {a.alert_id for a in attempts} == warning_ids and all(a.ok for a in attempts)
    # Each caseworker's five cases arrived, and no case twice to the same caseworker.
    for i, w in enumerate(workers):
        mails = smtp_server.to(w.email)
        refs = [f"S-{9000 + c}" for c in range(100) if c % 20 == i]
        text = "\n".join(m.text for m in mails)
        for ref in refs:
            assert ref in text
    # Grouping still works under contention: a recipient's alerts may be split between the two
    # workers' claims (so a few messages each), but nowhere near one message per alert.
    assert len(smtp_server.messages) <= 100


def test_a_warning_waiting_for_a_retry_is_cancelled_when_the_deadline_is_met_meanwhile(
        engine, session, smtp_server):
    town = Town(session)
    case = town.investigation("S-801")
    session.commit()
    settings = settings_for(smtp_server, delivery={"backoff_base_seconds": 3600})
    transport = Transport(settings)
    t0 = at("2025-06-04T09:00")
    smtp_server.stop()
    rounds(engine, settings, transport, t0)
    assert the_warning(session).state == AlertState.PENDING
    smtp_server.start()
    # The investigation is finished before the retry is due.
    investigation = session.exec(select(Investigation).where(Investigation.case_id == case.id)).one()
    investigation.completed_at = t0 + timedelta(minutes=30)
    session.add(investigation)
    case.facts_changed_at = t0 + timedelta(minutes=30)
    session.add(case)
    session.commit()
    rounds(engine, settings, transport, t0 + timedelta(hours=2))
    warning = the_warning(session)
    assert warning.state == AlertState.CANCELLED and "met" in (warning.last_error or "")
    assert smtp_server.to(ANNE) == []
    assert session.get(Deadline, warning.deadline_id).status == "met"
