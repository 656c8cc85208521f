"""The weekly digest: exactly the right items for a fixed week, once per leader and week, no CPR."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from report_helpers import Builder, local
from watchdog.casestore import WorkerRole
from watchdog.outbox import Alert, AlertKind, Channel
from watchdog.render import find_sensitive, message_from_payload, message_sensitive
from watchdog.reports import ReportInputError
from watchdog.reports.digest import (
    enqueue_weekly_digests, format_due, latest_due_week, parse_iso_week, preview_digests, send_time,
)
from watchdog.rules.types import Duty, Status
from watchdog.settings import load_settings

SEND_W10 = local("2024-03-04T07:00")  # Monday of ISO week 2024-W10, the default digest time


@pytest.fixture
def settings():
    return load_settings()


def build_team_week(session):
    b = Builder(session)
    fam = b.team("FAM", "Familierådgivningen Nord")
    ung = b.team("UNG", "Ungeteamet")
    leader = b.worker(fam, "Lea Leder", role=WorkerRole.LEADER, ext_id="L1",
                      teams_url="workflows://prod.example/wf/sig")
    b.worker(ung, "Ulla Leder", role=WorkerRole.LEADER, ext_id="L2")
    b.worker(fam, "Gammel Leder", role=WorkerRole.LEADER, ext_id="L3", active=False)
    anna, bo = b.worker(fam, "Anna Rådgiver"), b.worker(fam, "Bo Rådgiver")
    c = [b.case(fam, ref=f"FAM-{i}", worker=anna) for i in range(1, 12)]
    D, S = Duty, Status
    ids = {
        "past_breach": b.outcome(c[0], D.INVESTIGATION_4M, "2024-02-28", S.BREACHED, worker=anna),
        "past_late": b.outcome(c[1], D.FOLLOW_UP, "2024-03-01", S.MET_LATE, worker=bo),
        "past_met": b.outcome(c[2], D.FOLLOW_UP, "2024-02-29", S.MET, worker=bo),
        "old_breach": b.outcome(c[3], D.ASSESSMENT_24H, "2024-02-10T10:00", S.BREACHED, worker=bo),
        "risk_anna": b.outcome(c[4], D.INVESTIGATION_4M, "2024-03-10", S.OPEN, worker=anna),
        "risk_anna_24h": b.outcome(c[5], D.ASSESSMENT_24H, "2024-03-05T09:00", S.OPEN, worker=anna),
        "risk_bo_edge": b.outcome(c[6], D.PLAN, "2024-03-17", S.OPEN, worker=bo),
        "too_far": b.outcome(c[7], D.PLAN, "2024-03-18", S.OPEN, worker=bo),
        "excepted": b.outcome(c[8], D.INVESTIGATION_4M, "2024-02-27", S.EXCEPTED, worker=anna),
        "no_worker": b.outcome(c[9], D.REASSESSMENT, "2024-03-08", S.OPEN),
        "before_past": b.outcome(c[10], D.FOLLOW_UP, "2024-02-25", S.MET_LATE, worker=bo),
    }
    b.outcome(b.case(ung, ref="UNG-1"), D.INVESTIGATION_4M, "2024-02-28", S.BREACHED)
    session.commit()
    return leader, ids


def refs(items):
    return [d.case_ref for d in items]


def test_digest_for_a_fixed_week_holds_exactly_the_right_items(session, settings):
    build_team_week(session)
    ((leader, message),) = preview_digests(session, now=SEND_W10, settings=settings, leader="L1", week="2024-W10")
    from watchdog.reports.digest import build_digest, load_digest_data
    team_id = leader.team_id
    data = load_digest_data(session, team_id, week="2024-W10", now=SEND_W10, settings=settings)
    content = build_digest("Lea Leder", "Familierådgivningen Nord", data, "2024-W10", SEND_W10)
    assert refs(content.breaches_past_week) == ["FAM-1", "FAM-2"]
    assert refs(content.open_breaches) == ["FAM-4", "FAM-1"]
    assert [(name, refs(items)) for name, items in content.at_risk] == [
        ("Anna Rådgiver", ["FAM-6", "FAM-5"]), ("Bo Rådgiver", ["FAM-7"]), ("Ingen ansvarlig rådgiver", ["FAM-10"])]
    assert content.at_risk_count == 4
    assert str(content.past_week[0]) == "2024-02-26" and str(content.past_week[1]) == "2024-03-03"
    lines = {line.key: (line.ja, line.total, line.percent) for line in content.compliance}
    # This year so far (as of the send time): 4-month: FAM-1 breached, FAM-9 excepted; follow-up:
    # FAM-2 late, FAM-3 met, FAM-11 late; 24-hour: FAM-4 breached, FAM-6 open and not yet due.
    assert lines["investigation_4m"] == (0, 2, 0)
    assert lines["follow_up"] == (1, 3, 33)
    assert lines["assessment_24h"] == (0, 1, 0)
    assert lines["reassessment"] == (0, 0, None)

    assert message.subject.startswith("Ugeoversigt uge 10: 2 overskredet i sidste uge, 4 i risiko, 2 åbne")
    for ref in ("FAM-1", "FAM-2", "FAM-4", "FAM-5", "FAM-6", "FAM-7", "FAM-10"):
        assert f"Sag {ref}:" in message.text and f"Sag {ref}:" in message.html
    for ref in ("FAM-3", "FAM-8", "FAM-9", "FAM-11", "UNG-1"):
        assert f"Sag {ref}:" not in message.text
    assert "Kære Lea Leder" in message.text and "frist udgangen af 28-02-2024" in message.text
    assert "1 af 3 (33 %)" in message.text and "(kommunal frist)" not in message.text
    card_facts = {f["title"]: f["value"] for f in message.card["body"][1]["facts"]}
    assert card_facts["Overskredet i sidste uge"] == "2" and card_facts["Åbne overskridelser"] == "2"
    assert message.card["actions"][0]["url"].startswith("https://")


def test_a_breach_of_last_week_still_open_is_listed_once_and_counted_in_both(session, settings):
    build_team_week(session)
    ((_, message),) = preview_digests(session, now=SEND_W10, settings=settings, leader="L1", week="2024-W10")
    # FAM-1 breached last week and is still open: listed under last week, counted among the open.
    assert message.text.count("Sag FAM-1:") == 1 and message.html.count("Sag FAM-1:") == 1
    assert "stadig er åbne: 2 (de nyeste først; 1 af dem står under sidste uge ovenfor)" in message.text
    assert message.text.count("Sag FAM-4:") == 1


def test_the_rendered_digest_carries_no_cpr_number_and_a_case_reference_that_looks_like_one_is_held_back(session, settings):
    leader, ids = build_team_week(session)
    messages = preview_digests(session, now=SEND_W10, settings=settings)
    assert len(messages) == 2  # the inactive leader gets none
    for _, m in messages:
        assert message_sensitive(m) == [] and find_sensitive(m.text) == []
    b = Builder(session)
    from watchdog.casestore import Team
    fam = session.exec(select(Team).where(Team.ext_id == "FAM")).one()
    b.outcome(b.case(fam, ref="010203-1234"), Duty.ASSESSMENT_24H, "2024-03-03T10:00", Status.BREACHED)
    session.commit()
    assert enqueue_weekly_digests(session, now=SEND_W10, settings=settings) == 1  # only Ulla's
    session.commit()
    keys = set(session.exec(select(Alert.key)).all())
    assert keys == {"digest:%d:2024-W10:email" % messages[1][0].id}


def test_digests_are_enqueued_once_per_leader_week_and_channel(session, settings):
    leader, _ = build_team_week(session)
    assert enqueue_weekly_digests(session, now=SEND_W10, settings=settings) == 3
    session.commit()
    assert enqueue_weekly_digests(session, now=SEND_W10 + timedelta(minutes=5), settings=settings) == 0
    alerts = session.exec(select(Alert).where(Alert.recipient_worker_id == leader.id).order_by(Alert.key)).all()
    assert [a.key for a in alerts] == [f"digest:{leader.id}:2024-W10:email", f"digest:{leader.id}:2024-W10:teams"]
    assert all(a.kind == AlertKind.DIGEST and a.send_after == SEND_W10 for a in alerts)
    assert alerts[1].channel == Channel.TEAMS and alerts[1].recipient_address == "workflows://prod.example/wf/sig"
    import json
    message = message_from_payload(json.loads(alerts[0].payload))
    assert message.subject.startswith("Ugeoversigt uge 10")


def test_before_the_send_time_the_previous_week_is_due_and_after_downtime_only_the_latest_week(session, settings):
    leader, _ = build_team_week(session)
    assert latest_due_week(SEND_W10 - timedelta(minutes=1), settings.schedule) == "2024-W09"
    enqueue_weekly_digests(session, now=SEND_W10 - timedelta(minutes=1), settings=settings)
    enqueue_weekly_digests(session, now=SEND_W10, settings=settings)
    # Down from Monday of W10 until Wednesday of W13: W11 and W12 are skipped, W13 is sent.
    enqueue_weekly_digests(session, now=local("2024-03-27T10:00"), settings=settings)
    session.commit()
    weeks = sorted({k.split(":")[2] for k in session.exec(select(Alert.key)).all()})
    assert weeks == ["2024-W09", "2024-W10", "2024-W13"]


def test_the_digest_time_is_configurable_and_local(settings):
    settings.schedule.digest_day = "fri"
    settings.schedule.digest_hour = 14
    settings.schedule.digest_minute = 30
    assert send_time("2024-W13", settings.schedule) == local("2024-03-29T14:30")  # CET
    assert send_time("2024-W14", settings.schedule) == local("2024-04-05T14:30")  # CEST
    assert latest_due_week(local("2024-04-05T14:29"), settings.schedule) == "2024-W13"


def test_a_malformed_week_or_unknown_leader_is_a_users_mistake(session, settings):
    with pytest.raises(ReportInputError, match="not an ISO week"):
        parse_iso_week("2024-10")
    with pytest.raises(ReportInputError, match="not an ISO week"):
        parse_iso_week("2024-W54")
    with pytest.raises(ReportInputError, match="no active team leader"):
        preview_digests(session, now=SEND_W10, settings=settings, leader="nobody")


def test_due_times_read_as_a_date_at_the_end_of_the_day_and_as_a_time_otherwise():
    assert format_due(local("2024-03-01T00:00")) == "udgangen af 29-02-2024"  # as everywhere else
    assert format_due(local("2024-03-05T09:00")) == "05-03-2024 kl. 09:00"


def _more_teams(session, settings, first: int, n: int) -> None:
    """``n`` more teams, each with an active leader, a caseworker, a breach, a deadline at risk, one
    met this year and an open acknowledgement: every query of the digest has rows in every team."""
    from datetime import date

    from watchdog.acknowledgements import acknowledge

    b = Builder(session)
    for i in range(first, first + n):
        team = b.team(f"T{i}", f"Team {i}")
        b.worker(team, f"Leder {i}", role=WorkerRole.LEADER, ext_id=f"TL{i}")
        worker = b.worker(team, f"Rådgiver {i}")
        breach = b.outcome(b.case(team, ref=f"T{i}-1", worker=worker), Duty.INVESTIGATION_4M, "2024-02-28",
                           Status.BREACHED, worker=worker)
        b.outcome(b.case(team, ref=f"T{i}-2", worker=worker), Duty.PLAN, "2024-03-12", Status.OPEN, worker=worker)
        b.outcome(b.case(team, ref=f"T{i}-3", worker=worker), Duty.FOLLOW_UP, "2024-01-20", Status.MET, worker=worker)
        session.flush()
        acknowledge(session, deadline_id=breach.id, worker_id=worker.id, reason="Afventer svar", ends_on=date(2024, 3, 8),
                    now=SEND_W10 - timedelta(days=1), settings=settings)
    session.commit()


def _statements(session, work) -> tuple[int, object]:
    from sqlalchemy import event

    engine, counted = session.get_bind(), []
    listener = lambda *args: counted.append(args[2])  # noqa: E731 - (conn, cursor, statement, …)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        result = work()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return len(counted), result


def test_the_weekly_digests_take_the_same_number_of_queries_for_three_teams_as_for_twelve(session, settings):
    build_team_week(session)
    _more_teams(session, settings, 0, 1)
    few, messages = _statements(session, lambda: preview_digests(session, now=SEND_W10, settings=settings))
    assert len(messages) == 3
    _more_teams(session, settings, 1, 9)
    many, messages = _statements(session, lambda: preview_digests(session, now=SEND_W10, settings=settings))
    assert len(messages) == 12 and many == few
    enqueue_few, _ = _statements(session, lambda: enqueue_weekly_digests(session, now=SEND_W10, settings=settings))
    session.rollback()
    _more_teams(session, settings, 10, 10)
    enqueued, sent = _statements(session, lambda: enqueue_weekly_digests(session, now=SEND_W10, settings=settings))
    assert sent == 23 and enqueued == enqueue_few  # 22 leaders, one with a Teams channel too

    # Each digest holds its own team's items, as when it is built alone.
    by_leader = dict((w.ext_id, m) for w, m in preview_digests(session, now=SEND_W10, settings=settings))
    for ext_id in ("L1", "L2", "TL0", "TL9", "TL19"):
        ((_, alone),) = preview_digests(session, now=SEND_W10, settings=settings, leader=ext_id)
        assert by_leader[ext_id] == alone
    tl9 = by_leader["TL9"].text
    assert "Sag T9-1:" in tl9 and "Sag T9-2:" in tl9 and "Sag T8-1:" not in tl9 and "Sag FAM-1:" not in tl9
    assert "påmindelserne er stoppet: 1" in tl9 and "Rådgiver 9 til og med 08-03-2024" in tl9
    assert "Første opfølgning inden for 3 måneder: 1 af 1 (100 %)" in tl9
    assert "påmindelserne er stoppet" not in by_leader["L2"].text
