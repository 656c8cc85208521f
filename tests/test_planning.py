"""Alert planning is pure: (deadlines, routing facts, policy, now) → the alerts due now.

No database here: the inputs are case-store and deadline rows built in memory; the working-day
calendar is the rules' own (watchdog.rules.calendar), so planning and rules agree on days off.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from watchdog.casestore import Absence, Team, Worker, WorkerRole
from watchdog.clock import to_local
from watchdog.deadlines import Deadline
from watchdog.outbox import AlertKind, Channel
from watchdog.rules.calendar import is_non_working_day
from watchdog.planning import RoutingFacts, ladder_stages, plan_alerts
from watchdog.rules.types import Duty, Regime, Status, SubjectKind
from watchdog.settings_sections import AlertSettings

from conftest import at

def working_day(day: date) -> bool:
    # The RULES calendar: weekends, helligdage, and Grundlovsdag, 24 and 31 December are off.
    return not is_non_working_day(day)


POLICY = AlertSettings(reviewers=["R1"])

TEAM = Team(id=1, ext_id="T1", name="Team Nord", duty_email="doegnvagt@kommune.example.dk",
            duty_teams_url="workflows://flow.example/vagt/sig")
CASEWORKER = Worker(id=10, ext_id="W10", name="Anne Rådgiver", email="anne@kommune.example.dk", team_id=1)
SUBSTITUTE = Worker(id=11, ext_id="W11", name="Bo Vikar", email="bo@kommune.example.dk", team_id=1)
LEADER = Worker(id=20, ext_id="L20", name="Lise Leder", email="lise@kommune.example.dk", team_id=1,
                role=WorkerRole.LEADER, teams_workflow_url="workflows://flow.example/lise/sig")
OTHER_LEADER = Worker(id=21, ext_id="L21", name="Other", email="other@kommune.example.dk", team_id=2,
                      role=WorkerRole.LEADER)
REVIEWER = Worker(id=30, ext_id="R1", name="Rita Review", email="rita@kommune.example.dk", team_id=1,
                  role=WorkerRole.REVIEWER)
WORKERS = {w.id: w for w in (CASEWORKER, SUBSTITUTE, LEADER, OTHER_LEADER, REVIEWER)}


def facts(*, absences=(), planned=frozenset()) -> RoutingFacts:
    return RoutingFacts(workers=WORKERS, teams={1: TEAM}, case_teams={100: 1}, absences=list(absences),
                        planned=set(planned))


def deadline(duty: Duty, start: datetime, due: datetime, *, status=Status.OPEN, id=1, met_at=None,
             worker_id=10) -> Deadline:
    return Deadline(id=id, key=f"{duty}:x:{id}:0", duty=duty, case_id=100, subject_kind=SubjectKind.CASE,
                    subject_id=id, regime=Regime.BL, citation="BL § 20, stk. 3", clock_start=start, due=due,
                    status=status, met_at=met_at, responsible_worker_id=worker_id, computed_at=start,
                    status_changed_at=start)


def plan(deadlines, now, **kw):
    return plan_alerts(deadlines, facts(**kw), POLICY, now=now, is_working_day=working_day)


# The investigation of 4 March 2025 is due at the end of 4 July 2025 (Friday).
INVESTIGATION = deadline(Duty.INVESTIGATION_4M, at("2025-03-04T11:00"), at("2025-07-05T00:00"))


def test_investigation_ladder_moves_warnings_off_holidays_and_weekends_into_working_hours():
    stages = ladder_stages(INVESTIGATION, POLICY, is_working_day=working_day)
    assert [(name, to_local(t).strftime("%a %d-%m %H:%M")) for name, t in stages] == [
        ("before_30d", "Wed 04-06 08:00"),  # 5 June (Grundlovsdag) is off: the working day before
        ("before_14d", "Fri 20-06 08:00"),  # Saturday 21 June → Friday
        ("before_7d", "Fri 27-06 08:00"),  # Saturday 28 June → Friday
        ("before_2d", "Thu 03-07 08:00"),  # midnight is outside working hours → that day's opening
    ]


def test_a_stage_is_planned_only_once_its_time_has_come():
    assert plan([INVESTIGATION], at("2025-06-04T07:59")) == []
    (alert,) = plan([INVESTIGATION], at("2025-06-04T08:00"))
    assert (alert.stage, alert.kind, alert.recipient_address, alert.channel) == (
        "before_30d", AlertKind.WARNING, "anne@kommune.example.dk", Channel.EMAIL)
    assert alert.key == "1:before_30d:10:email"
    assert alert.send_after == at("2025-06-04T08:00")


def test_simulated_days_give_each_warning_once_in_order_then_the_escalation_at_breach():
    planned: set[tuple[int, str]] = set()
    got = []
    now = at("2025-03-04T12:00")
    while now < at("2025-07-08T12:00"):
        status = Status.OPEN if now < INVESTIGATION.due else Status.BREACHED
        d = INVESTIGATION.model_copy(update={"status": status})
        for alert in plan([d], now, planned=planned):
            got.append((alert.stage, alert.recipient_address))
            planned.add((alert.deadline_id, alert.stage))
        now += timedelta(hours=5)
    assert got == [
        ("before_30d", "anne@kommune.example.dk"), ("before_14d", "anne@kommune.example.dk"),
        ("before_7d", "anne@kommune.example.dk"), ("before_2d", "anne@kommune.example.dk"),
        ("breach", "lise@kommune.example.dk"), ("breach", "workflows://flow.example/lise/sig"),
        ("reminder_1d", "anne@kommune.example.dk"),  # the caseworker, one day after (Sunday → Monday)
    ]


def test_a_deadline_first_seen_after_several_stages_gets_only_the_most_recent_one():
    alerts = plan([INVESTIGATION], at("2025-06-30T10:00"))
    assert [a.stage for a in alerts] == ["before_7d"]


def test_an_already_planned_stage_is_not_planned_again_even_for_a_new_recipient():
    absence = Absence(id=1, ext_id="A1", worker_id=10, starts_on=date(2025, 6, 4), ends_on=date(2025, 6, 6),
                      substitute_id=11)
    assert plan([INVESTIGATION], at("2025-06-04T09:00"), absences=[absence],
                planned={(1, "before_30d")}) == []


def test_24_hour_warnings_go_out_at_any_hour_to_caseworker_and_the_duty_address():
    d = deadline(Duty.ASSESSMENT_24H, at("2025-03-08T02:00"), at("2025-03-09T02:00"))  # a Saturday night
    first = plan([d], at("2025-03-08T02:00"))
    assert {(a.stage, a.recipient_address, a.channel) for a in first} == {
        ("at_receipt", "anne@kommune.example.dk", Channel.EMAIL),
        ("at_receipt", "doegnvagt@kommune.example.dk", Channel.EMAIL),
        ("at_receipt", "workflows://flow.example/vagt/sig", Channel.TEAMS),
    }
    assert all(a.send_after == at("2025-03-08T02:00") for a in first)
    second = plan([d], at("2025-03-08T22:00"), planned={(1, "at_receipt")})
    assert {a.stage for a in second} == {"before_4h"} and len(second) == 3
    assert "1:before_4h:doegnvagt@kommune.example.dk:email" in {a.key for a in second}


def test_an_absent_caseworker_s_warnings_go_to_the_substitute_or_else_the_leader():
    with_sub = Absence(id=1, ext_id="A1", worker_id=10, starts_on=date(2025, 6, 2), ends_on=date(2025, 6, 13),
                       substitute_id=11)
    without = Absence(id=2, ext_id="A2", worker_id=10, starts_on=date(2025, 6, 2), ends_on=date(2025, 6, 13))
    before = Absence(id=3, ext_id="A3", worker_id=10, starts_on=date(2025, 5, 1), ends_on=date(2025, 6, 3),
                     substitute_id=11)
    now = at("2025-06-04T09:00")
    assert [a.recipient_address for a in plan([INVESTIGATION], now, absences=[with_sub])] == ["bo@kommune.example.dk"]
    assert {a.recipient_address for a in plan([INVESTIGATION], now, absences=[without])} == {
        "lise@kommune.example.dk", "workflows://flow.example/lise/sig"}
    assert [a.recipient_address for a in plan([INVESTIGATION], now, absences=[before])] == ["anne@kommune.example.dk"]


def test_reassessment_warnings_go_to_the_reviewers_as_well_as_the_caseworker():
    received = at("2025-03-07T10:00")  # Friday
    d = deadline(Duty.REASSESSMENT, received, at("2025-03-15T00:00"))
    alerts = plan([d], at("2025-03-07T10:05"))
    assert {(a.stage, a.recipient_worker_id) for a in alerts} == {("at_receipt", 10), ("at_receipt", 30)}


def test_a_reassessment_received_on_a_saturday_is_warned_on_monday_morning():
    d = deadline(Duty.REASSESSMENT, at("2025-03-08T10:00"), at("2025-03-16T00:00"))
    assert plan([d], at("2025-03-09T12:00")) == []
    alerts = plan([d], at("2025-03-10T08:00"))
    assert {a.send_after for a in alerts} == {at("2025-03-10T08:00")}


def test_closed_deadlines_get_no_alerts():
    for status in (Status.MET, Status.MET_LATE, Status.NOT_APPLICABLE):
        d = INVESTIGATION.model_copy(update={"status": status})
        assert plan([d], at("2025-07-03T09:00")) == [], status
        assert plan([d], at("2025-07-20T09:00")) == [], status


def test_an_open_breach_is_escalated_once_to_the_leader_and_the_caseworker_is_reminded():
    d = INVESTIGATION.model_copy(update={"status": Status.BREACHED})
    # Due at midnight Friday/Saturday: the escalation waits for Monday's opening, and so does the
    # first reminder (one day after: Sunday).
    assert plan([d], at("2025-07-05T12:00")) == []
    first = plan([d], at("2025-07-07T08:00"))
    assert {(a.kind, a.stage, a.recipient_worker_id) for a in first} == {
        (AlertKind.ESCALATION, "breach", 20), (AlertKind.REMINDER, "reminder_1d", 10)}
    # A week after the breach (Saturday 12 July) the next reminder waits for Monday 14 July; the
    # leader is not reminded item by item.
    assert plan([d], at("2025-07-12T12:00"), planned={(1, "breach"), (1, "reminder_1d")}) == []
    reminder = plan([d], at("2025-07-14T08:30"), planned={(1, "breach"), (1, "reminder_1d")})
    assert {(a.kind, a.stage, a.recipient_worker_id) for a in reminder} == {(AlertKind.REMINDER, "reminder_7d", 10)}


def _sent_on(d, policy, start, end, *, facts_=None):
    """Simulate a poll every morning from ``start`` to ``end``: (local date, stage) of each alert."""
    planned: set[tuple[int, str]] = set()
    got = []
    now = start
    while now <= end:
        for alert in plan_alerts([d], facts_ or facts(planned=planned), policy, now=now,
                                 is_working_day=working_day):
            if (alert.deadline_id, alert.stage) not in planned:
                got.append((to_local(now).date().isoformat(), alert.stage, alert.recipient_address))
        planned |= {(a.deadline_id, a.stage) for a in plan_alerts(
            [d], facts_ or facts(planned=planned), policy, now=now, is_working_day=working_day)}
        now += timedelta(days=1)
    return got


def test_reminders_decay_one_seven_and_fourteen_days_after_the_breach_then_every_fourteen():
    # Due at the end of Monday 3 November 2025; polled every morning at 09:00 for two months.
    d = deadline(Duty.FOLLOW_UP, at("2025-08-03T10:00"), at("2025-11-04T00:00"), status=Status.BREACHED)
    got = [(day, stage) for day, stage, address in _sent_on(d, POLICY, at("2025-11-04T09:00"), at("2026-01-06T09:00"))
           if address == "anne@kommune.example.dk"]
    assert got == [
        ("2025-11-05", "reminder_1d"),
        ("2025-11-11", "reminder_7d"),
        ("2025-11-18", "reminder_14d"),
        ("2025-12-02", "reminder_28d"),
        ("2025-12-16", "reminder_42d"),
        # 56 days after is 30 December, a working day; 70 days after 13 January (not reached).
        ("2025-12-30", "reminder_56d"),
    ]


def test_the_reminder_series_is_configurable_and_can_stop():
    d = deadline(Duty.FOLLOW_UP, at("2025-08-03T10:00"), at("2025-11-04T00:00"), status=Status.BREACHED)
    policy = AlertSettings(reminder_days=[2, 5], reminder_repeat_days=0, escalate_on_breach=False)
    got = [(day, stage) for day, stage, _ in _sent_on(d, policy, at("2025-11-04T09:00"), at("2025-12-31T09:00"))]
    assert got == [("2025-11-06", "reminder_2d"), ("2025-11-10", "reminder_5d")]  # 5 days: Sunday → Monday


def test_a_deadline_first_seen_long_after_its_breach_is_a_backlog_item_not_an_escalation():
    # Breached at the end of 4 July 2025; the service went live on 1 December 2025.
    live = at("2025-12-01T09:00")
    d = INVESTIGATION.model_copy(update={"status": Status.BREACHED, "first_seen_at": live})
    alerts = plan([d], live)
    assert {(a.kind, a.stage, a.recipient_worker_id) for a in alerts} == {
        (AlertKind.ESCALATION, "backlog", 20), (AlertKind.REMINDER, "reminder_140d", 10)}
    assert {a.send_after for a in alerts if a.stage == "backlog"} == {live}
    # A breach of last week, first seen today, is no backlog: it is escalated as usual.
    recent = deadline(Duty.FOLLOW_UP, at("2025-08-03T10:00"), at("2025-11-25T00:00"), status=Status.BREACHED)
    recent = recent.model_copy(update={"first_seen_at": live})
    assert "breach" in {a.stage for a in plan([recent], live)}


def test_the_second_escalation_goes_to_the_head_of_unit_and_the_configured_addresses_once():
    head = Worker(id=40, ext_id="H1", name="Hanne Chef", email="hanne@kommune.example.dk", team_id=None,
                  role=WorkerRole.HEAD)
    workers = {**WORKERS, head.id: head}
    policy = AlertSettings(second_escalation_days=30, second_escalation_addresses=[
        "kvalitet@kommune.example.dk", "workflows://flow.example/chef/sig"])
    d = INVESTIGATION.model_copy(update={"status": Status.BREACHED})

    def at_(now, planned=()):
        return plan_alerts([d], RoutingFacts(workers=workers, teams={1: TEAM}, case_teams={100: 1},
                                             planned=set(planned)), policy, now=now, is_working_day=working_day)

    before = at_(at("2025-08-01T09:00"), planned={(1, "breach"), (1, "reminder_14d")})
    assert "escalation_2" not in {a.stage for a in before}
    # 30 days after the due time is Monday 4 August 2025 00:00: sent at that day's opening.
    second = [a for a in at_(at("2025-08-04T08:00"), planned={(1, "breach"), (1, "reminder_28d")})
              if a.stage == "escalation_2"]
    assert {(a.kind, a.recipient_address, a.channel) for a in second} == {
        (AlertKind.ESCALATION, "hanne@kommune.example.dk", Channel.EMAIL),
        (AlertKind.ESCALATION, "kvalitet@kommune.example.dk", Channel.EMAIL),
        (AlertKind.ESCALATION, "workflows://flow.example/chef/sig", Channel.TEAMS)}
    assert len({a.key for a in second}) == 3
    assert not [a for a in at_(at("2025-08-05T08:00"), planned={(1, "breach"), (1, "escalation_2")})
                if a.stage == "escalation_2"]
    # A backlog breach (first seen long after it) reaches the head counted in a summary, stage backlog_2.
    seen = d.model_copy(update={"first_seen_at": at("2025-12-01T09:00")})
    head_stages = {a.stage for a in plan_alerts([seen], RoutingFacts(workers=workers, teams={1: TEAM}, case_teams={100: 1}),
                                                policy, now=at("2025-12-01T09:00"), is_working_day=working_day)
                   if a.recipient_address == "hanne@kommune.example.dk"}
    assert head_stages == {"backlog_2"}
    # Off by default.
    assert AlertSettings().second_escalation_days is None


def test_an_excepted_investigation_still_unfinished_reminds_only_the_caseworker_to_finish_it():
    d = INVESTIGATION.model_copy(update={"status": Status.EXCEPTED})
    assert plan([d], at("2025-07-03T09:00")) == []  # before due: the exception stops the ladder
    alerts = plan([d], at("2025-07-07T09:00"))
    # Due Saturday 00:00; the due-time reminder and the one-day one both fall on Monday morning: one.
    assert {(a.kind, a.stage, a.recipient_worker_id) for a in alerts} == {(AlertKind.REMINDER, "snarest_1d", 10)}
    finished = INVESTIGATION.model_copy(update={"status": Status.EXCEPTED, "met_at": at("2025-07-06T10:00")})
    assert plan([finished], at("2025-07-07T09:00")) == []


def test_a_case_without_caseworker_goes_to_the_team_leader():
    d = deadline(Duty.FOLLOW_UP, at("2025-01-06T10:00"), at("2025-04-07T00:00"), worker_id=None)
    alerts = plan([d], at("2025-04-04T09:00"))  # due at the end of Sunday 6 April
    assert {a.recipient_worker_id for a in alerts} == {20} and {a.stage for a in alerts} == {"before_3d"}


def test_christmas_eve_is_no_day_for_warnings_so_they_go_out_the_working_day_before():
    # Due at the end of Saturday 27 December 2025: 3 days before is 24 December (off) → 23 December.
    d = deadline(Duty.FOLLOW_UP, at("2025-09-27T10:00"), at("2025-12-28T00:00"))
    stages = ladder_stages(d, POLICY, is_working_day=working_day)
    assert [(name, to_local(t).strftime("%a %d-%m %H:%M")) for name, t in stages] == [
        ("before_14d", "Fri 12-12 08:00"), ("before_3d", "Tue 23-12 08:00")]


def _reminder_by_scan(d, policy, hours, now, *, snarest=False):
    """The reminder decision as it was made before the bisection: every step looked at."""
    from watchdog.planning import ANY_HOUR_DUTIES, reminder_offsets

    any_hour = Duty(d.duty) in ANY_HOUR_DUTIES
    prefix = "snarest" if snarest else "reminder"
    steps = [(f"{prefix}_{n}d", d.due + timedelta(days=n)) for n in reminder_offsets(policy, max(0, (now - d.due).days))]
    if snarest:
        steps.insert(0, ("snarest_0", d.due))
    latest, next_at = None, None
    for stage, nominal in steps:
        send_at = nominal if any_hour else hours.next_working_moment(nominal)
        if send_at <= now:
            if latest is None or send_at >= latest[1]:
                latest = (stage, send_at)
        elif next_at is None or send_at < next_at:
            next_at = send_at
    return (latest[0] if latest else None, latest[1] if latest else None, next_at)


def test_the_reminder_decision_by_bisection_is_the_one_every_step_would_give():
    from watchdog.planning import _Hours, reminder_due

    policies = [POLICY, AlertSettings(reminder_days=[1, 2, 3], reminder_repeat_days=1),
                AlertSettings(reminder_days=[5], reminder_repeat_days=0),
                AlertSettings(reminder_days=[2, 9], reminder_repeat_days=30)]
    # Due on a Friday before Easter, at the end of a day and at 13:37; a 24-hour duty at any hour.
    cases = [deadline(Duty.INVESTIGATION_4M, at("2025-01-01T09:00"), at("2025-04-12T00:00")),
             deadline(Duty.FOLLOW_UP, at("2025-01-01T09:00"), at("2025-12-19T13:37")),
             deadline(Duty.ASSESSMENT_24H, at("2025-04-16T22:00"), at("2025-04-17T22:00"))]
    checked = 0
    for policy in policies:
        hours = _Hours(policy.working_hours_start, policy.working_hours_end, working_day)
        for d in cases:
            for hour in range(0, 24 * 120, 5):
                now = d.due + timedelta(hours=hour - 24)
                for snarest in (False, True):
                    got = reminder_due(d, policy, hours, now, snarest=snarest)
                    assert (got.stage, got.send_at, got.next_at) == _reminder_by_scan(d, policy, hours, now,
                                                                                       snarest=snarest)
                    checked += 1
    assert checked == 4 * 3 * 576 * 2
