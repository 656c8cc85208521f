"""Alerts people act on (issue 14), end to end through a real SMTP server and Teams receiver:
what can still be met comes first, a leader's message stays short however large the backlog,
go-live gives one backlog summary instead of a flood, the reminder cadence decays, the second
escalation reaches the head of unit, and every step is sent once across polls and replicas.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from fixtures_servers import settings_for
from watchdog import delivery_round, service
from watchdog.casestore import Case, Investigation, Measure, MeasureKind, Team, Worker, WorkerRole
from watchdog.delivery import Transport
from watchdog.outbox import Alert, AlertState, DeliveryAttempt
from watchdog.reports.digest import preview_digests

from conftest import at

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

LEADER = "lise@kommune.example.dk"
HEAD = "hanne@kommune.example.dk"
BASE_URL = "https://frister.kommune.example.dk"


def team_with_breaches(session: Session, *, breaches: int, aware, caseworkers: int = 20,
                       leader_teams_url: str | None = None) -> list[Worker]:
    """One team of ``caseworkers`` and a leader; ``breaches`` investigations all aware at
    ``aware`` (due four months later, never finished), spread over the caseworkers."""
    team = Team(ext_id="T1", name="Team Nord")
    session.add(team)
    session.flush()
    workers = [Worker(ext_id=f"W{i}", name=f"Rådgiver {i:02d}", email=f"w{i}@kommune.example.dk", team_id=team.id)
               for i in range(caseworkers)]
    session.add(Worker(ext_id="L1", name="Lise Leder", email=LEADER, role=WorkerRole.LEADER, team_id=team.id,
                       teams_workflow_url=leader_teams_url))
    session.add_all(workers)
    session.flush()
    cases = [Case(ext_id=f"S-{5000 + i}", team_id=team.id, worker_id=workers[i % caseworkers].id,
                  opened_at=aware, facts_changed_at=aware) for i in range(breaches)]
    session.add_all(cases)
    session.flush()
    session.add_all(Investigation(ext_id=f"U-{c.ext_id}", case_id=c.id, aware_at=aware) for c in cases)
    session.commit()
    return workers


def rounds(engine, settings, transport, now) -> None:
    service.poll(engine, settings, now=now, replica="r1")
    delivery_round.deliver(engine, settings, now=now, transport=transport, worker_name="r1")


def lines(mail) -> int:
    return len(mail.text.splitlines())


@pytest.mark.slow  # 1,000 escalations through the real delivery path: ~30 s on a shared machine
def test_a_leaders_escalation_of_a_thousand_breaches_is_a_summary_under_150_lines(engine, session, smtp_server):
    # Aware 2 March 2026: due at the end of 2 July. Seen while open (before the first warning),
    # so at the breach these are a thousand new breaches at once.
    workers = team_with_breaches(session, breaches=1000, aware=at("2026-03-02T10:00"))
    settings = settings_for(smtp_server, web={"base_url": BASE_URL})
    transport = Transport(settings)
    service.poll(engine, settings, now=at("2026-05-01T09:00"), replica="r1")
    rounds(engine, settings, transport, at("2026-07-03T09:00"))  # breached at the end of 2 July
    (mail,) = [m for m in smtp_server.to(LEADER) if not str(m.message["Subject"]).startswith("Ugeoversigt")]
    assert lines(mail) < 150, mail.text
    text = mail.text
    # Counts per caseworker first, then the new breaches in full (capped), then the link.
    assert text.index("Overblik pr. rådgiver") < text.index("Nye overskridelser siden din sidste besked (1000)")
    for w in workers:
        assert f"- {w.name}: 50 overskredet, 0 inden for 7 dage" in text
    listed = [line for line in text.splitlines() if line.startswith("- Sag S-")]
    assert len(listed) == settings.alerts.max_items_per_section
    assert f"og {1000 - len(listed)} flere: {BASE_URL}/team" in text
    assert str(mail.message["Subject"]) == "1000 nye overskridelser i Team Nord"
    # Every escalation is recorded as sent: nothing is lost, the message summarises it.
    sent = session.exec(select(func.count()).select_from(Alert).where(
        Alert.stage == "breach", Alert.state.in_((AlertState.SENT, AlertState.ACCEPTED)))).one()
    assert sent == 1000
    # The weekly digest keeps to the same rule.
    ((_, digest),) = preview_digests(session, now=at("2026-07-06T07:00"), settings=settings)
    assert len(digest.text.splitlines()) < 150
    assert f"og {1000 - settings.alerts.max_items_per_section} flere: {BASE_URL}/team" in digest.text


def test_go_live_gives_each_leader_one_backlog_summary_and_no_escalation_per_item(engine, session, smtp_server):
    # Breached at the end of 2 July 2026; the service first sees them on 1 December.
    team_with_breaches(session, breaches=200, aware=at("2026-03-02T10:00"), caseworkers=10)
    settings = settings_for(smtp_server, web={"base_url": BASE_URL}, delivery={"batch_size": 30})
    rounds(engine, settings, Transport(settings), at("2026-12-01T09:00"))
    stages = Counter(session.exec(select(Alert.stage).where(Alert.deadline_id.is_not(None))).all())
    assert stages["breach"] == 0 and stages["backlog"] == 200
    leader_mails = [m for m in smtp_server.to(LEADER) if not str(m.message["Subject"]).startswith("Ugeoversigt")]
    (summary,) = leader_mails  # one message, though the batches held 30 alerts each
    assert lines(summary) < 150
    assert str(summary.message["Subject"]).startswith("Overblik: 200 gamle overskridelser fundet ved opstart")
    assert "Gamle overskridelser fundet ved opstart – Team Nord: 200" in summary.text
    assert "Pr. rådgiver: Rådgiver 00 20, Rådgiver 01 20" in summary.text
    assert "Pr. pligt: afslutning af den børnefaglige undersøgelse inden for 4 måneder 200." in summary.text
    assert "S-5000" not in summary.text  # counted, not listed
    # The caseworkers get their reminders on the normal cadence, one message each.
    per_worker = Counter(m.rcpt_tos[0] for m in smtp_server.messages if m.rcpt_tos[0] != LEADER)
    assert len(per_worker) == 10 and set(per_worker.values()) == {1}
    assert all(a.state == AlertState.SENT for a in session.exec(select(Alert)).all())


def test_a_caseworkers_meetable_deadline_comes_first_on_email_and_on_teams(
        engine, session, smtp_server, teams_receiver):
    team = Team(ext_id="T1", name="Team Nord")
    session.add(team)
    session.flush()
    anne = Worker(ext_id="W1", name="Anne", email="anne@kommune.example.dk", team_id=team.id,
                  teams_workflow_url=teams_receiver.url)
    session.add(anne)
    session.flush()
    for ref, aware in (("S-OLD-1", at("2026-01-05T10:00")), ("S-OLD-2", at("2026-02-02T10:00")),
                       ("S-NEW", at("2026-07-28T10:00")), ("S-SOON", at("2026-08-02T10:00"))):
        case = Case(ext_id=ref, team_id=team.id, worker_id=anne.id, opened_at=aware, facts_changed_at=aware)
        session.add(case)
        session.flush()
        session.add(Investigation(ext_id=f"U-{ref}", case_id=case.id, aware_at=aware))
    session.commit()
    settings = settings_for(smtp_server)
    transport = Transport(settings)
    rounds(engine, settings, transport, at("2026-11-25T09:00"))  # go-live: old breaches, nothing meetable
    smtp_server.messages.clear()
    teams_receiver.posts.clear()
    # 30 November: S-NEW was due at the end of 28 November (new breach), S-SOON is due at the end
    # of 2 December (meetable), the two old ones get their next reminders.
    rounds(engine, settings, transport, at("2026-11-30T09:00"))
    (mail,) = smtp_server.to("anne@kommune.example.dk")
    assert str(mail.message["Subject"]).startswith("Frist om 2 dage (02-12-2026): ")
    assert "i sag S-SOON" in str(mail.message["Subject"])
    refs = [line.split(":")[0] for line in mail.text.splitlines() if line.startswith("- Sag ")]
    assert refs[0] == "- Sag S-SOON" and refs[1] == "- Sag S-NEW"
    (post,) = teams_receiver.posts
    card = json.dumps(post.card, ensure_ascii=False)
    assert card.index("S-SOON") < card.index("S-NEW")


def test_each_step_is_sent_once_across_two_polls_and_two_replicas(engine, engine_factory, session, smtp_server):
    team = Team(ext_id="T1", name="Team Nord")
    session.add(team)
    session.flush()
    anne = Worker(ext_id="W1", name="Anne", email="anne@kommune.example.dk", team_id=team.id)
    session.add_all([anne, Worker(ext_id="L1", name="Lise", email=LEADER, role=WorkerRole.LEADER, team_id=team.id),
                     Worker(ext_id="H1", name="Hanne", email=HEAD, role=WorkerRole.HEAD)])
    session.flush()
    aware = at("2026-03-02T10:00")  # due at the end of Thursday 2 July 2026
    case = Case(ext_id="S-1", team_id=team.id, worker_id=anne.id, opened_at=aware, facts_changed_at=aware)
    session.add(case)
    session.flush()
    session.add(Investigation(ext_id="U-1", case_id=case.id, aware_at=aware))
    session.commit()
    settings = settings_for(smtp_server, alerts={"second_escalation_days": 30,
                                                 "second_escalation_addresses": ["kvalitet@kommune.example.dk"]})
    replicas = [(engine, "r1"), (engine_factory(), "r2")]
    transport = Transport(settings)
    day = at("2026-06-29T09:00")
    while day <= at("2026-08-17T09:00"):
        for _ in range(2):  # two polls, by each replica, then each replica delivers
            for eng, name in replicas:
                service.poll(eng, settings, now=day, replica=name)
        for eng, name in replicas:
            delivery_round.deliver(eng, settings, now=day, transport=transport, worker_name=name)
        day += timedelta(days=1)
    session.expire_all()
    alerts = session.exec(select(Alert).where(Alert.deadline_id.is_not(None))).all()
    attempts = Counter(session.exec(select(DeliveryAttempt.alert_id).where(DeliveryAttempt.ok)).all())
    assert all(attempts[a.id] == 1 for a in alerts)
    stages = sorted((a.stage, a.recipient_address) for a in alerts if a.stage not in
                    ("before_30d", "before_14d", "before_7d", "before_2d"))
    assert stages == [
        ("breach", LEADER),
        ("escalation_2", HEAD), ("escalation_2", "kvalitet@kommune.example.dk"),
        ("reminder_14d", "anne@kommune.example.dk"), ("reminder_1d", "anne@kommune.example.dk"),
        ("reminder_28d", "anne@kommune.example.dk"), ("reminder_42d", "anne@kommune.example.dk"),
        ("reminder_7d", "anne@kommune.example.dk"),
    ]
    # The decaying cadence, as the caseworker received it (dates of the reminder mails).
    reminders = sorted((a.sent_at, a.stage) for a in alerts if a.stage.startswith("reminder_"))
    assert [s for _, s in reminders] == ["reminder_1d", "reminder_7d", "reminder_14d", "reminder_28d", "reminder_42d"]
    # Due Friday 3 July 00:00: one day after is a Saturday → Monday; the others fall on Fridays.
    assert [a.date().isoformat() for a, _ in reminders] == [
        "2026-07-06", "2026-07-10", "2026-07-17", "2026-07-31", "2026-08-14"]
    (to_head,) = smtp_server.to(HEAD)
    assert "S-1" in to_head.text and str(to_head.message["Subject"]).startswith("Frist overskredet")
    assert len(smtp_server.to("kvalitet@kommune.example.dk")) == 1
