"""The caseworker's daily digest: one message a working day at the chosen hour instead of a message
each round, with everything due within 14 days and every open breach; the 24-hour assessment's
warnings still go out at once. Through the real poll and delivery rounds to the SMTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import at
from fixtures_servers import settings_for
from sqlmodel import Session, select
from test_alerts_e2e import ANNE, Town, assert_nothing_sensitive, rounds

from watchdog.casestore import Notification
from watchdog.delivery import Transport
from watchdog.errors import WatchdogError
from watchdog.outbox import Alert, AlertState
from watchdog.reports.daily_digest import daily_digest_hour, set_daily_digest

MORNING = at("2025-06-04T09:00")  # a Wednesday; Thursday 5 June is Grundlovsdag


@pytest.fixture
def anne_with_digest(engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-6001", aware=at("2025-02-14T10:00"))  # due at the end of 14 June: 10 days left
    town.investigation("S-6002")  # due 4 July: 30 days ahead, outside the digest's 14 days
    session.commit()
    settings = settings_for(smtp_server)
    with Session(engine) as s:
        set_daily_digest(s, worker_id=town.workers["W1"].id, hour=7, now=at("2025-06-03T16:30"))
        s.commit()
    return town, settings, Transport(settings)


def test_a_caseworker_who_chose_the_daily_digest_gets_one_message_that_day(engine, session, anne_with_digest, smtp_server):
    _town, settings, transport = anne_with_digest
    rounds(engine, settings, transport, MORNING, MORNING + timedelta(hours=2), at("2025-06-04T15:30"))
    (digest,) = smtp_server.to(ANNE)
    assert str(digest.message["Subject"]).startswith("Dagens frister 04-06-2025")
    assert "S-6001" in digest.text and "S-6002" not in digest.text
    # The warnings planned for her are in the outbox, cancelled with the reason, not lost.
    session.expire_all()
    warnings = session.exec(select(Alert).where(Alert.deadline_id.is_not(None), Alert.recipient_address == ANNE)).all()
    assert warnings and {a.state for a in warnings} == {AlertState.CANCELLED}
    assert all("daily digest" in a.last_error for a in warnings)
    # Grundlovsdag: nothing; Friday at 07:00: the next digest.
    rounds(engine, settings, transport, at("2025-06-05T09:00"), at("2025-06-06T06:59"))
    assert len(smtp_server.to(ANNE)) == 1
    rounds(engine, settings, transport, at("2025-06-06T07:00"))
    assert [str(m.message["Subject"])[:26] for m in smtp_server.to(ANNE)] == [
        "Dagens frister 04-06-2025:", "Dagens frister 06-06-2025:"]
    assert_nothing_sensitive(smtp_server)


def test_the_24_hour_assessment_warning_still_goes_out_at_once(engine, session, anne_with_digest, smtp_server):
    town, settings, transport = anne_with_digest
    rounds(engine, settings, transport, MORNING)
    case = town.case("S-6003")
    session.add(Notification(ext_id="N-6003", case_id=case.id, received_at=at("2025-06-04T10:00")))
    session.commit()
    rounds(engine, settings, transport, at("2025-06-04T10:05"))
    subjects = [str(m.message["Subject"]) for m in smtp_server.to(ANNE)]
    assert len(subjects) == 2 and "S-6003" in subjects[1]


def test_switching_back_sends_each_rounds_messages_again(engine, session, anne_with_digest, smtp_server):
    town, settings, transport = anne_with_digest
    with Session(engine) as s:
        set_daily_digest(s, worker_id=town.workers["W1"].id, hour=None, now=at("2025-06-04T08:00"))
        with pytest.raises(WatchdogError, match="klokkeslæt"):
            set_daily_digest(s, worker_id=town.workers["W1"].id, hour=3, now=at("2025-06-04T08:00"))
        s.commit()
        assert daily_digest_hour(s, town.workers["W1"].id) is None
    rounds(engine, settings, transport, MORNING)
    (mail,) = smtp_server.to(ANNE)
    assert not str(mail.message["Subject"]).startswith("Dagens frister")


def _caseworkers_with_digest(session, first: int, n: int):
    """``n`` caseworkers who chose the daily digest, each with a breach and a deadline within 14 days."""
    from report_helpers import Builder

    from watchdog.rules.types import Duty, Status

    b = Builder(session)
    team = b.team(f"DT{first}")
    workers = []
    for i in range(first, first + n):
        w = b.worker(team, f"Rådgiver {i}")
        b.outcome(b.case(team, ref=f"D{i}-1", worker=w), Duty.INVESTIGATION_4M, "2025-05-20", Status.BREACHED, worker=w)
        b.outcome(b.case(team, ref=f"D{i}-2", worker=w), Duty.PLAN, "2025-06-10", Status.OPEN, worker=w)
        set_daily_digest(session, worker_id=w.id, hour=7, now=at("2025-06-03T16:30"))
        workers.append(w)
    session.commit()
    return workers


def test_the_daily_digests_take_the_same_number_of_queries_for_two_workers_as_for_eight(session):
    from datetime import date

    from test_digest import _statements

    from watchdog.casestore import Absence
    from watchdog.reports.daily_digest import enqueue_daily_digests
    from watchdog.render import message_from_payload
    from watchdog.settings import load_settings

    settings = load_settings()
    workers = _caseworkers_with_digest(session, 0, 2)
    few, sent = _statements(session, lambda: enqueue_daily_digests(session, now=MORNING, settings=settings))
    assert sent == 2
    session.rollback()
    workers += _caseworkers_with_digest(session, 2, 6)
    # Worker 0 substitutes for worker 5 today: worker 5's deadlines are in worker 0's digest too.
    session.add(Absence(ext_id="A-1", worker_id=workers[5].id, substitute_id=workers[0].id,
                        starts_on=date(2025, 6, 2), ends_on=date(2025, 6, 6)))
    session.commit()
    many, sent = _statements(session, lambda: enqueue_daily_digests(session, now=MORNING, settings=settings))
    assert sent == 8 and many == few
    import json
    texts = {a.recipient_worker_id: message_from_payload(json.loads(a.payload)).text
             for a in session.exec(select(Alert)).all()}
    assert "Sag D0-1:" in texts[workers[0].id] and "Sag D5-2:" in texts[workers[0].id]
    assert "Sag D1-1:" not in texts[workers[0].id]
    assert "Sag D3-1:" in texts[workers[3].id] and "Sag D3-2:" in texts[workers[3].id]
    assert "Sag D0-1:" not in texts[workers[3].id] and "Sag D5-1:" not in texts[workers[3].id]
    # Breaches first, then the soonest: D5-1 (breached 20 May) before D0-2 (due 10 June).
    zero = texts[workers[0].id]
    assert zero.index("Sag D0-1:") < zero.index("Sag D5-1:") < zero.index("Sag D0-2:") < zero.index("Sag D5-2:")
