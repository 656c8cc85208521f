"""The poll plans only deadlines whose ``next_alert_at`` has come.

Two halves:
- pure: ``planning.next_planning_time`` agrees with the planner itself. Between ``now`` and the
  time it returns, planning the deadline yields no stage it did not yield at ``now``; at that
  time it does (Hypothesis, over every duty, status, ladder and reminder setting);
- stored: the poll writes ``next_alert_at``, later polls read only the rows whose time has come
  (a poll with nothing due reads no deadline and no routing rows), a changed alert policy plans
  everything once, and a row changed meanwhile by another replica keeps its own time.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import event, select
from sqlmodel import Session

from watchdog import planning, service
from watchdog.casestore import Case, Investigation, Team, Worker, WorkerRole
from watchdog.clock import LOCAL_TZ
from watchdog.deadlines import Deadline
from watchdog.outbox import Alert
from watchdog.planning import _Hours, _stages_due, next_planning_time
from watchdog.rules.types import Duty, Status
from watchdog.settings_sections import AlertSettings

from conftest import at
from fixtures_servers import settings_for


def working_day(day: date) -> bool:
    return service.is_warning_day(day)


def D(*fields, first_seen_at=None) -> service.OpenDeadline:  # noqa: N802 - reads as the row it builds
    """A deadline row as planning reads it (not yet planned: no next_alert_at)."""
    return service.OpenDeadline(*fields, None, first_seen_at)


class _Everyone:
    """A router that always finds somebody: the property is about times, not recipients."""

    def warning_targets(self, deadline):
        return [planning._Target(1, "x@kommune.example.dk", None)]

    caseworker_targets = leader_targets = warning_targets

    def second_level_targets(self):
        return [planning._Target(2, "head@kommune.example.dk", None)]


def stages_at(d: D, policy: AlertSettings, now: datetime) -> set[str]:
    hours = _Hours(policy.working_hours_start, policy.working_hours_end, working_day)
    return {stage for _kind, stage, _t, _targets in _stages_due(d, policy, hours, _Everyone(), now)}


LADDERS = st.sampled_from([
    {}, {"investigation_4m": ["30d", "7d", "1d"]}, {"investigation_4m": ["receipt", "2d"]},
    {"assessment_24h": ["receipt", "4h", "1h"]}, {"follow_up": ["14d"]}, {"investigation_4m": []},
])
# Instants on a 15-minute grid from late 2024 to 2026: nights, weekends, holidays, DST nights.
INSTANTS = st.integers(min_value=0, max_value=4 * 24 * 700).map(
    lambda q: datetime(2024, 11, 1, tzinfo=LOCAL_TZ) + timedelta(minutes=15 * q))


@st.composite
def cases(draw):
    duty = draw(st.sampled_from([Duty.INVESTIGATION_4M, Duty.ASSESSMENT_24H, Duty.FOLLOW_UP,
                                 Duty.REASSESSMENT]))
    start = draw(INSTANTS)
    length = timedelta(hours=24) if duty == Duty.ASSESSMENT_24H else timedelta(days=draw(st.integers(1, 130)))
    status = draw(st.sampled_from([Status.OPEN, Status.BREACHED, Status.EXCEPTED, Status.MET]))
    met_at = None if status != Status.MET and draw(st.booleans()) else start + length / 2
    # First seen at the clock start, or long after (go-live: a backlog deadline).
    seen = start + timedelta(days=draw(st.sampled_from([0, 0, 20, 200])))
    d = D(1, 1, duty, status, start, start + length, met_at if status in (Status.MET, Status.EXCEPTED) else None, 10,
          first_seen_at=seen)
    policy = AlertSettings(ladder=draw(LADDERS), reminder_days=draw(st.sampled_from([[], [1], [1, 7, 14], [3, 5]])),
                           reminder_repeat_days=draw(st.sampled_from([0, 1, 7, 14])),
                           second_escalation_days=draw(st.sampled_from([None, 1, 30])),
                           escalate_on_breach=draw(st.booleans()))
    now = start + timedelta(minutes=15 * draw(st.integers(0, 4 * 24 * 160)))
    return d, policy, now


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_nothing_new_is_due_before_the_next_planning_time_and_something_is_at_it(case):
    d, policy, now = case
    then = stages_at(d, policy, now)
    nxt = next_planning_time(d, policy, now=now, is_working_day=working_day)
    # Every send time is on the 15-minute grid (clock starts are, due times are local midnights or
    # 24 hours on, openings are whole hours). Probe it up to the next time, or 30 days when there
    # is none or it is further: nothing new.
    horizon = min(nxt or now + timedelta(days=30), now + timedelta(days=30))
    probe = now + timedelta(minutes=15)
    while probe < horizon:
        assert stages_at(d, policy, probe) <= then, (probe, nxt)
        probe += timedelta(minutes=15)
    if nxt is not None:
        assert nxt > now
        assert stages_at(d, policy, nxt) - then, f"nothing new at {nxt}"


def test_closed_deadlines_need_no_more_planning():
    d = D(1, 1, Duty.INVESTIGATION_4M, Status.MET, at("2025-03-04T11:00"), at("2025-07-05T00:00"),
          at("2025-05-01T10:00"), 10)
    assert next_planning_time(d, AlertSettings(), now=at("2025-05-02T10:00"), is_working_day=working_day) is None


def test_the_next_time_is_the_next_ladder_stage_in_working_hours():
    # Due at the end of Friday 4 July 2025; 30 days before is Wednesday 4 June, 00:00 local,
    # which moves to that day's opening (08:00).
    d = D(1, 1, Duty.INVESTIGATION_4M, Status.OPEN, at("2025-03-04T11:00"), at("2025-07-05T00:00"), None, 10)
    policy = AlertSettings(ladder={"investigation_4m": ["30d", "7d"]})
    assert next_planning_time(d, policy, now=at("2025-05-01T09:00"), is_working_day=working_day) == \
        datetime(2025, 6, 4, 8, 0, tzinfo=LOCAL_TZ)


# --- stored ------------------------------------------------------------------------------------

AWARE = at("2025-03-04T11:00")  # the investigation is due at the end of Friday 4 July 2025


@pytest.fixture
def town(session):
    team = Team(ext_id="T1", name="Team Nord")
    session.add(team)
    session.flush()
    anne = Worker(ext_id="W1", name="Anne", email="anne@kommune.example.dk", team_id=team.id)
    lise = Worker(ext_id="L1", name="Lise", email="lise@kommune.example.dk", team_id=team.id,
                  role=WorkerRole.LEADER)
    session.add_all([anne, lise])
    session.flush()
    case = Case(ext_id="S-1", team_id=team.id, worker_id=anne.id, opened_at=AWARE, facts_changed_at=AWARE)
    session.add(case)
    session.flush()
    session.add(Investigation(ext_id="U-1", case_id=case.id, aware_at=AWARE))
    session.commit()
    return case


def the_deadline(engine) -> Deadline:
    with Session(engine) as s:
        return s.exec(select(Deadline).where(Deadline.duty == Duty.INVESTIGATION_4M)).scalars().one()


class Spy:
    """Counts what planning was given and which tables were read, per poll."""

    def __init__(self, engine, monkeypatch):
        self.planned: list[int] = []
        self.statements: list[str] = []
        real = planning.plan

        def spy(deadlines, *args, **kwargs):
            deadlines = list(deadlines)
            self.planned.extend(d.id for d in deadlines)
            return real(deadlines, *args, **kwargs)

        monkeypatch.setattr(planning, "plan", spy)
        event.listen(engine, "before_cursor_execute", self._record)
        self.engine = engine

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)

    def reset(self):
        self.planned.clear()
        self.statements.clear()

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._record)


@pytest.fixture
def spy(engine, monkeypatch):
    made = Spy(engine, monkeypatch)
    yield made
    made.close()


def test_the_poll_plans_a_deadline_again_only_when_its_next_stage_comes(engine, town, spy):
    settings = settings_for(None, alerts={"ladder": {"investigation_4m": ["30d", "7d"]}})
    service.poll(engine, settings, now=at("2025-03-04T12:00"), replica="t")
    d = the_deadline(engine)
    assert spy.planned.count(d.id) == 1  # new: planned at once
    assert d.next_alert_at == datetime(2025, 6, 4, 8, 0, tzinfo=LOCAL_TZ)

    spy.reset()
    service.poll(engine, settings, now=at("2025-05-01T09:00"), replica="t")
    assert d.id not in spy.planned
    spy.reset()
    with Session(engine) as s:
        assert service.plan_due_alerts(s, settings, now=at("2025-05-01T09:05")) == []
    # Nothing was due: planning read one index range, and no routing facts or outbox rows.
    assert [st for st in spy.statements if "FROM deadline" in st]
    assert not [st for st in spy.statements if "FROM worker" in st or "FROM alert" in st or "FROM case_file" in st]

    spy.reset()
    service.poll(engine, settings, now=at("2025-06-04T09:00"), replica="t")
    assert spy.planned == [d.id]
    with Session(engine) as s:
        stages = s.exec(select(Alert.stage).where(Alert.deadline_id == d.id)).scalars().all()
    assert stages == ["before_30d"]
    # 7 days before the end of Friday 4 July: Friday 27 June, 08:00.
    assert the_deadline(engine).next_alert_at == datetime(2025, 6, 27, 8, 0, tzinfo=LOCAL_TZ)


def test_a_changed_case_is_planned_at_the_next_poll(engine, town, spy):
    settings = settings_for(None, alerts={"ladder": {"investigation_4m": ["30d"]}})
    service.poll(engine, settings, now=at("2025-03-04T12:00"), replica="t")
    d = the_deadline(engine)
    with Session(engine) as s:  # the investigation is moved: a new awareness date
        inv = s.exec(select(Investigation)).scalars().one()
        inv.aware_at = at("2025-02-04T11:00")
        case = s.get(Case, town.id)
        case.facts_changed_at = at("2025-05-01T08:00")
        s.add_all([inv, case])
        s.commit()
    spy.reset()
    service.poll(engine, settings, now=at("2025-05-07T09:00"), replica="t")
    # Due now at the end of 4 June: the 30-day warning (5 May) has passed and goes out now.
    assert spy.planned == [d.id]
    with Session(engine) as s:
        assert s.exec(select(Alert.stage).where(Alert.deadline_id == d.id)).scalars().all() == ["before_30d"]


def test_a_changed_alert_policy_plans_every_open_deadline_once(engine, town, spy):
    settings = settings_for(None, alerts={"ladder": {"investigation_4m": ["30d"]}})
    service.poll(engine, settings, now=at("2025-03-04T12:00"), replica="t")
    service.poll(engine, settings, now=at("2025-04-10T09:00"), replica="t")
    d = the_deadline(engine)
    spy.reset()
    # A new, earlier stage: 100 days before 4 July is 26 March, already passed.
    wider = settings_for(None, alerts={"ladder": {"investigation_4m": ["100d", "30d"]}})
    service.poll(engine, wider, now=at("2025-04-10T10:00"), replica="t")
    assert spy.planned == [d.id]
    with Session(engine) as s:
        assert s.exec(select(Alert.stage).where(Alert.deadline_id == d.id)).scalars().all() == ["before_100d"]
    spy.reset()
    service.poll(engine, wider, now=at("2025-04-10T11:00"), replica="t")
    assert spy.planned == []  # once only


def test_a_row_changed_meanwhile_keeps_its_own_planning_time(engine, town):
    settings = settings_for(None, alerts={"ladder": {"investigation_4m": ["30d"]}})
    service.poll(engine, settings, now=at("2025-03-04T12:00"), replica="t")
    d = the_deadline(engine)
    stale = service.OpenDeadline(d.id, d.case_id, d.duty, d.status, d.clock_start, d.due, d.met_at,
                                 d.responsible_worker_id, d.next_alert_at)
    # Another replica's poll rewrote the row (a new due time) after this one read it.
    changed_at = at("2025-03-05T09:00")
    with Session(engine) as s:
        row = s.get(Deadline, d.id)
        row.due, row.next_alert_at = at("2025-06-05T00:00"), changed_at
        s.add(row)
        s.commit()
    with Session(engine) as s:
        service._store_next_times(s, [stale], {d.id: at("2025-06-04T06:00")})
        s.commit()
    assert the_deadline(engine).next_alert_at == changed_at
    # Unchanged, the same call moves it on.
    fresh = the_deadline(engine)
    row = service.OpenDeadline(fresh.id, fresh.case_id, fresh.duty, fresh.status, fresh.clock_start, fresh.due,
                               fresh.met_at, fresh.responsible_worker_id, fresh.next_alert_at)
    with Session(engine) as s:
        service._store_next_times(s, [row], {d.id: at("2025-05-06T06:00")})
        s.commit()
    assert the_deadline(engine).next_alert_at == at("2025-05-06T06:00")


def test_a_stage_with_nobody_to_receive_it_is_tried_again_on_the_next_poll(engine, session, spy):
    team = Team(ext_id="T9", name="Uden leder")
    session.add(team)
    session.flush()
    case = Case(ext_id="S-9", team_id=team.id, worker_id=None, opened_at=AWARE, facts_changed_at=AWARE)
    session.add(case)
    session.flush()
    session.add(Investigation(ext_id="U-9", case_id=case.id, aware_at=AWARE))
    session.commit()
    settings = settings_for(None, alerts={"ladder": {"investigation_4m": ["30d"]}})
    service.poll(engine, settings, now=at("2025-06-04T09:00"), replica="t")
    d = the_deadline(engine)
    assert d.next_alert_at == at("2025-06-04T09:00")  # stuck: no caseworker, no leader
    spy.reset()
    service.poll(engine, settings, now=at("2025-06-04T09:05"), replica="t")
    assert spy.planned == [d.id]
