""""Jeg er på sagen": the rule, the silenced reminders, the end notice and the replica race, through
the real poll and delivery rounds to the real SMTP server, on SQLite and PostgreSQL.

The investigation of ``Town`` (test_alerts_e2e) is due at the end of Friday 4 July 2025: the leader
is escalated to on Monday 7 July 08:00, the first reminder (to caseworker and leader) is due on
Monday 14 July 08:00 and the second on Monday 21 July.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from conftest import at
from fixtures_servers import settings_for
from sqlmodel import Session, select
from test_alerts_e2e import ANNE, LISE, Town, assert_nothing_sensitive, deadline_mails, rounds

from watchdog import delivery_round, service
from watchdog.acknowledgement_alerts import handle_ended
from watchdog.acknowledgements import (
    AckEvent,
    Acknowledgement,
    AcknowledgementRefused,
    acknowledge,
    check_acknowledgement,
    end_early,
    list_acknowledgements,
    silences,
)
from watchdog.deadlines import Deadline, OutcomeEvent
from watchdog.delivery import Transport
from watchdog.outbox import Alert, AlertKind, AlertState
from watchdog.rules.types import Status

ESCALATED = at("2025-07-07T09:00")
REMINDER_1 = at("2025-07-14T09:00")


def _breached(engine, session, smtp_server, **alerts):
    town = Town(session)
    town.investigation("S-7001")
    session.commit()
    # A reminder a week after the breach, then weekly (the default cadence starts the day after,
    # before these tests acknowledge): the timeline below counts on REMINDER_1 being the first.
    alerts = {"reminder_days": [7], "reminder_repeat_days": 7, **alerts}
    settings = settings_for(smtp_server, alerts=alerts)
    transport = Transport(settings)
    rounds(engine, settings, transport, ESCALATED)
    deadline = session.exec(select(Deadline).where(Deadline.status == Status.BREACHED)).one()
    return town, settings, transport, deadline


def _reminders(session: Session):
    session.expire_all()
    return session.exec(select(Alert).where(Alert.kind == AlertKind.REMINDER).order_by(Alert.id)).all()


def test_the_rule_refuses_an_empty_reason_a_cpr_number_and_an_end_in_the_past_or_too_far_ahead():
    today = date(2025, 7, 8)
    assert check_acknowledgement("Ringer til skolen i morgen", date(2025, 7, 22), today=today, max_days=14) == {}
    assert check_acknowledgement("Venter på svar", today, today=today, max_days=14) == {}
    assert set(check_acknowledgement("  ", date(2025, 7, 9), today=today, max_days=14)) == {"reason"}
    cpr = check_acknowledgement("Barnet 010203-1234 er flyttet", date(2025, 7, 9), today=today, max_days=14)
    assert "CPR-nummer" in cpr["reason"]
    past = check_acknowledgement("Venter", date(2025, 7, 7), today=today, max_days=14)
    assert "07-07-2025" in past["ends_on"] and "overskredet" in past["ends_on"]
    far = check_acknowledgement("Venter", date(2025, 7, 23), today=today, max_days=14)
    assert "22-07-2025" in far["ends_on"]  # says the latest date allowed
    assert set(check_acknowledgement("", None, today=today, max_days=14)) == {"reason", "ends_on"}


def test_silencing_spares_only_the_first_escalation_at_breach_and_ends_at_the_end():
    now = at("2025-07-10T09:00")
    until = at("2025-07-17T00:00")
    assert silences(AlertKind.REMINDER, "reminder_7d", until=until, now=now)
    assert silences(AlertKind.WARNING, "before_2d", until=until, now=now)
    assert silences(AlertKind.ESCALATION, "head_1", until=until, now=now)  # a repeat escalation
    assert not silences(AlertKind.ESCALATION, "breach", until=until, now=now)
    assert not silences(AlertKind.REMINDER, "reminder_7d", until=until, now=until)
    assert not silences(AlertKind.REMINDER, "reminder_7d", until=None, now=now)


def test_an_acknowledged_breach_gets_no_reminder_until_its_end_then_the_reminder_and_one_end_notice(
        engine, session, smtp_server):
    town, settings, transport, deadline = _breached(engine, session, smtp_server)
    anne = town.workers["W1"]
    with Session(engine) as s:
        acknowledge(s, deadline_id=deadline.id, worker_id=anne.id, reason="Undersøgelsen skrives færdig",
                    ends_on=date(2025, 7, 16), now=at("2025-07-08T10:00"), settings=settings)
        s.commit()
    before = len(smtp_server.messages)
    rounds(engine, settings, transport, REMINDER_1, at("2025-07-15T09:00"), at("2025-07-16T15:00"))
    assert _reminders(session) == []
    assert deadline_mails(session, smtp_server, ANNE) == []
    assert len(deadline_mails(session, smtp_server, LISE)) == 1  # only the escalation of 7 July
    # The deadline itself is untouched: still breached, still due when it was.
    session.expire_all()
    same = session.get(Deadline, deadline.id)
    assert same.status == Status.BREACHED and same.due == deadline.due
    # The end of the 16th passes: the reminder comes back at the next poll, once, and Anne hears
    # that her acknowledgement ended.
    rounds(engine, settings, transport, at("2025-07-17T08:05"), at("2025-07-17T09:00"))
    reminders = _reminders(session)
    assert {(a.stage, a.recipient_address, a.state) for a in reminders} == {
        ("reminder_7d", ANNE, AlertState.SENT)}  # leaders are not reminded item by item
    to_anne = deadline_mails(session, smtp_server, ANNE)
    subjects = sorted(str(m.message["Subject"]) for m in smtp_server.to(ANNE))
    assert any("overskredet" in s and "S-7001" in s for s in subjects)  # the reminder
    assert [s for s in subjects if "er udløbet" in s] == ['Din markering "jeg er på sagen" er udløbet: sag S-7001']
    assert len(to_anne) == 2  # the reminder and the end notice, nothing twice
    assert len(smtp_server.messages) > before
    # The next poll adds nothing, and the outcome log has the acknowledgement and its end.
    rounds(engine, settings, transport, at("2025-07-17T10:00"))
    assert len(_reminders(session)) == 1
    events = session.exec(select(OutcomeEvent).where(OutcomeEvent.kind.in_([AckEvent.ACKNOWLEDGED, AckEvent.ENDED]))
                          .order_by(OutcomeEvent.id)).all()
    assert [e.kind for e in events] == [AckEvent.ACKNOWLEDGED, AckEvent.ENDED]
    assert "Anne Rådgiver" in events[0].detail and "Undersøgelsen skrives færdig" in events[0].detail
    assert "16-07-2025" in events[0].detail
    assert_nothing_sensitive(smtp_server)


def test_ending_early_brings_the_reminder_back_at_the_next_poll_without_an_end_notice(
        engine, session, smtp_server):
    town, settings, transport, deadline = _breached(engine, session, smtp_server)
    with Session(engine) as s:
        ack = acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["W1"].id, reason="Møde aftalt",
                          ends_on=date(2025, 7, 20), now=at("2025-07-08T10:00"), settings=settings).id
        s.commit()
    rounds(engine, settings, transport, REMINDER_1)
    assert _reminders(session) == []
    with Session(engine) as s:
        end_early(s, ack_id=ack, worker_id=town.workers["L1"].id, now=at("2025-07-15T11:00"))
        s.commit()
    rounds(engine, settings, transport, at("2025-07-15T11:05"))
    assert {a.recipient_address for a in _reminders(session)} == {ANNE}  # leaders: no item reminders
    assert not [m for m in smtp_server.to(ANNE) if "udløbet" in str(m.message["Subject"])]
    with Session(engine) as s:
        assert handle_ended(s, now=at("2025-07-21T09:00"), settings=settings) == 0
        (view,) = list_acknowledgements(s, now=at("2025-07-21T09:00"), case_id=deadline.case_id, open_only=False)
        assert view.ended_by_name == "Lise Leder" and view.ended_at == at("2025-07-15T11:00")
        with pytest.raises(AcknowledgementRefused, match="allerede afsluttet"):
            end_early(s, ack_id=ack, worker_id=town.workers["W1"].id, now=at("2025-07-16T09:00"))


def test_a_second_acknowledgement_a_closed_deadline_and_another_teams_worker_are_refused(
        engine, session, smtp_server):
    from watchdog.casestore import Team, Worker

    town, settings, _transport, deadline = _breached(engine, session, smtp_server)
    other_team = Team(ext_id="T2", name="Team Syd")
    session.add(other_team)
    session.flush()
    stranger = Worker(ext_id="X1", name="Xenia Syd", email="x@kommune.example.dk", team_id=other_team.id)
    session.add(stranger)
    session.commit()
    now = at("2025-07-08T10:00")
    with Session(engine) as s:
        with pytest.raises(AcknowledgementRefused) as refused:
            acknowledge(s, deadline_id=deadline.id, worker_id=stranger.id, reason="Hjælper", ends_on=date(2025, 7, 10),
                        now=now, settings=settings)
        assert set(refused.value.errors) == {"deadline"}
        acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["L1"].id, reason="Leder tager den",
                    ends_on=date(2025, 7, 10), now=now, settings=settings)
        s.commit()
    with Session(engine) as s:
        with pytest.raises(AcknowledgementRefused, match="Lise Leder er allerede på sagen til og med 10-07-2025"):
            acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["W1"].id, reason="Også mig",
                        ends_on=date(2025, 7, 12), now=now, settings=settings)
        s.rollback()
        # After the end date a new acknowledgement may be made (the old one no longer holds it).
        acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["W1"].id, reason="Igen",
                    ends_on=date(2025, 7, 14), now=at("2025-07-11T09:00"), settings=settings)
        s.commit()
        deadline_row = s.get(Deadline, deadline.id)
        deadline_row.status = Status.MET_LATE
        s.commit()
        with pytest.raises(AcknowledgementRefused, match="ikke længere åben"):
            acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["W1"].id, reason="Igen",
                        ends_on=date(2025, 7, 14), now=at("2025-07-12T08:00"), settings=settings)


def test_an_acknowledgement_made_while_a_replica_plans_the_reminder_is_neither_lost_nor_doubled(
        engine, engine_factory, session, smtp_server):
    """Replica A has planned reminder_7d (its transaction still open) when Anne acknowledges on
    replica B. The reminder A stores must not go out while the acknowledgement holds, and must
    go out exactly once when it ends."""
    town, settings, transport, deadline = _breached(engine, session, smtp_server)
    other = engine_factory()
    done = threading.Event()
    errors: list[BaseException] = []

    def acknowledge_on_b():
        try:
            with Session(other) as s:
                acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["W1"].id, reason="Jeg ringer i dag",
                            ends_on=date(2025, 7, 16), now=REMINDER_1, settings=settings)
                s.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    with Session(engine) as a:
        planned = service.plan_due_alerts(a, settings, now=REMINDER_1)
        assert {p.stage for p in planned} == {"reminder_7d"}  # A has not seen any acknowledgement
        b = threading.Thread(target=acknowledge_on_b)
        b.start()
        # On PostgreSQL B commits now (it touches no row A holds); on SQLite it waits for A's
        # write lock and commits right after A. Either way A goes on and stores the reminder.
        done.wait(2)
        from watchdog import outbox

        outbox.enqueue(a, planned, now=REMINDER_1)
        a.commit()
    b.join(30)
    assert not errors, errors
    assert session.exec(select(Acknowledgement)).one().ends_on == date(2025, 7, 16)  # not lost
    delivery_round.deliver(engine, settings, now=REMINDER_1 + timedelta(minutes=1), transport=transport, worker_name="a")
    rounds(engine, settings, transport, at("2025-07-15T09:00"), at("2025-07-16T15:00"))
    assert deadline_mails(session, smtp_server, ANNE) == []
    held = _reminders(session)
    assert {a.state for a in held} == {AlertState.PENDING} and len(held) == 1
    # The acknowledgement ends at the opening of Thursday 17 July.
    rounds(engine, settings, transport, at("2025-07-17T08:00"), at("2025-07-17T09:00"))
    assert sorted(a.stage for a in _reminders(session) if a.state == AlertState.SENT) == ["reminder_7d"]
    rounds(engine, settings, transport, at("2025-07-21T09:00"))
    reminders = _reminders(session)
    by_stage = sorted((a.stage, a.recipient_address) for a in reminders if a.state == AlertState.SENT)
    # reminder_7d once (the held one), then reminder_14d on 21 July as the cadence says.
    assert by_stage == [("reminder_14d", ANNE), ("reminder_7d", ANNE)]
    assert len(reminders) == 2


def test_the_leaders_weekly_digest_lists_the_open_acknowledgements_without_their_reason(
        engine, session, smtp_server):
    from watchdog.reports.digest import preview_digests

    town, settings, _transport, deadline = _breached(engine, session, smtp_server)
    with Session(engine) as s:
        acknowledge(s, deadline_id=deadline.id, worker_id=town.workers["W1"].id, reason="Privat detalje",
                    ends_on=date(2025, 7, 18), now=at("2025-07-08T10:00"), settings=settings)
        s.commit()
        ((leader, message),) = preview_digests(s, now=at("2025-07-14T08:00"), settings=settings)
    assert leader.ext_id == "L1"
    assert '"Jeg er på sagen" – påmindelserne er stoppet: 1' in message.text
    assert "Sag S-7001" in message.text and "Anne Rådgiver til og med 18-07-2025" in message.text
    assert "Privat detalje" not in message.text
