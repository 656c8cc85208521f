"""One bad record costs at most its own case: a case whose rules raise is recorded and retried,
every other case goes on (issue 12, point 1 b). Real database; the CLI as a real process."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, update
from sqlmodel import Session, select

from conftest import at
from process_helpers import cli, watchdog_env
from watchdog import deadline_marks
from watchdog.casestore import Case, FollowUp, Measure, Notification, Team, Worker
from watchdog.deadline_marks import RecomputeFailure, mark_changed
from watchdog.deadlines import Deadline
from watchdog.recompute import poll_deadlines, refresh_deadlines
from watchdog.ops.metrics import read_db_figures
from watchdog.outbox import Alert, AlertKind
from watchdog.rules.types import Status
from watchdog.settings import load_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SETTINGS = load_settings()
YEAR_9999 = date(9999, 12, 31)


@pytest.fixture
def staff(session) -> tuple[Team, Worker]:
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    worker = Worker(ext_id="W1", name="Anne", email="anne@x.dk", team_id=team.id)
    session.add(worker)
    session.flush()
    return team, worker


def _case_with_follow_up(session, team, worker, ref: str, next_planned_on: date) -> tuple[Case, FollowUp]:
    case = Case(ext_id=ref, team_id=team.id, worker_id=worker.id, opened_at=at("2024-01-02 09:00"),
                facts_changed_at=at("2024-01-02 09:00"))
    session.add(case)
    session.flush()
    measure = Measure(ext_id=f"M-{ref}", case_id=case.id, kind="support", legal_basis="BL § 32",
                      decided_at=at("2024-02-01 10:00"), effected_at=at("2024-02-05 10:00"))
    session.add(measure)
    session.flush()
    follow_up = FollowUp(ext_id=f"F-{ref}", measure_id=measure.id, performed_at=at("2024-05-01 10:00"),
                         next_planned_on=next_planned_on)
    session.add(follow_up)
    session.flush()
    return case, follow_up


def test_a_case_whose_rules_raise_is_recorded_and_the_rest_of_its_batch_is_computed(session, staff):
    team, worker = staff
    good, _ = _case_with_follow_up(session, team, worker, "S-good", date(2024, 11, 1))
    bad, bad_follow_up = _case_with_follow_up(session, team, worker, "S-bad", date(2024, 11, 1))
    first = poll_deadlines(session, now=at("2024-06-01 12:00"), settings=SETTINGS)
    assert first.cases_recomputed == 2 and first.cases_failed == 0
    before = {d.key: d.status for d in session.exec(select(Deadline).where(Deadline.case_id == bad.id))}

    bad_follow_up.next_planned_on = YEAR_9999  # the date arithmetic overflows
    session.add(bad_follow_up)
    session.add(Notification(ext_id="N-good", case_id=good.id, received_at=at("2024-06-02 09:00")))
    session.flush()
    mark_changed(session, [good.id, bad.id], now=at("2024-06-02 09:00"))

    stats = poll_deadlines(session, now=at("2024-06-02 12:00"), settings=SETTINGS)
    assert stats.cases_recomputed == 1 and stats.cases_failed == 1
    session.expire_all()
    duties = {d.duty for d in session.exec(select(Deadline).where(Deadline.case_id == good.id))}
    assert "assessment_24h" in duties  # the good case's new notification got its deadline
    # The bad case's deadlines are left as they were: not declared "no longer required".
    assert {d.key: d.status for d in session.exec(select(Deadline).where(Deadline.case_id == bad.id))} == before
    failure = session.get(RecomputeFailure, bad.id)
    assert failure.attempts == 1 and failure.error.startswith("OverflowError")
    assert session.get(Case, bad.id).dirty is True and session.get(Case, good.id).dirty is False

    again = poll_deadlines(session, now=at("2024-06-02 12:05"), settings=SETTINGS)
    assert (again.cases_recomputed, again.cases_failed) == (0, 1)  # retried, still failing
    session.expire_all()
    assert session.get(RecomputeFailure, bad.id).attempts == 2

    bad_follow_up.next_planned_on = date(2025, 1, 15)  # the case system corrects it
    session.add(bad_follow_up)
    session.flush()
    fixed = poll_deadlines(session, now=at("2024-06-02 12:10"), settings=SETTINGS)
    assert (fixed.cases_recomputed, fixed.cases_failed) == (1, 0)
    session.expire_all()
    assert session.get(RecomputeFailure, bad.id) is None and session.get(Case, bad.id).dirty is False
    assert read_db_figures(session, now=at("2024-06-02 12:10")).failing_cases == 0


def test_the_full_recompute_isolates_a_failing_case_too(session, staff):
    team, worker = staff
    cases = [_case_with_follow_up(session, team, worker, f"S-{i}", date(2024, 11, 1))[0] for i in range(3)]
    _case_with_follow_up(session, team, worker, "S-bad", YEAR_9999)
    stats = refresh_deadlines(session, now=at("2024-06-01 12:00"), settings=SETTINGS)
    assert stats.cases_recomputed == 3 and stats.cases_failed == 1
    computed = session.execute(select(func.count(func.distinct(Deadline.case_id)))).scalar_one()
    assert computed == len(cases)
    assert [f.case_ref for f in deadline_marks.list_failures(session)] == ["S-bad"]


def test_a_fact_in_year_9999_no_longer_stops_watchdog_tick_for_everybody(tmp_path, engine, database_url,
                                                                         smtp_server):
    env = watchdog_env(database_url, WATCHDOG_SMTP__HOST="127.0.0.1", WATCHDOG_SMTP__PORT=str(smtp_server.port),
                       WATCHDOG_DELIVERY__OPS_URLS=json.dumps(["mailto://ops@kommune.example.dk"]))
    out = cli("import", *sorted(str(p) for p in EXAMPLES.glob("*.csv")), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    with Session(engine) as s:
        follow_up = s.exec(select(FollowUp).order_by(FollowUp.id)).first()
        bad_case = s.get(Case, s.get(Measure, follow_up.measure_id).case_id)
        other = s.exec(select(Case).where(Case.id != bad_case.id).order_by(Case.id)).first()
        # Straight into the store (intake will refuse such a date; the poll must survive it anyway),
        # together with a new notification on another case in the same poll.
        s.execute(update(FollowUp).where(FollowUp.id == follow_up.id).values(next_planned_on=YEAR_9999))
        s.add(Notification(ext_id="N-new", case_id=other.id, received_at=at("2024-06-03 10:00")))
        s.flush()
        mark_changed(s, [bad_case.id, other.id], now=at("2024-06-03 10:00"))
        s.commit()
        bad_ref, new_id = bad_case.ext_id, s.exec(select(Notification.id).where(Notification.ext_id == "N-new")).one()

    tick = cli("tick", cwd=tmp_path, env=env)
    assert tick.returncode == 0, tick.stderr
    assert f"deadlines of case {bad_ref} cannot be computed" in tick.stderr
    assert "OverflowError" in tick.stderr
    with Session(engine) as s:
        assert s.exec(select(Deadline).where(Deadline.subject_id == new_id,
                                             Deadline.duty == "assessment_24h")).one().status in (
            Status.OPEN, Status.BREACHED)
        assert read_db_figures(s, now=at("2024-06-03 11:00")).failing_cases == 1
        ops = s.exec(select(Alert).where(Alert.kind == AlertKind.OPS, Alert.stage == "recompute_failure")).all()
    assert len(ops) == 1
    [mail] = smtp_server.to("ops@kommune.example.dk")
    assert bad_ref in mail.text and "OverflowError" in mail.text

    health = cli("health", "--json", cwd=tmp_path, env=env)
    report = json.loads(health.stdout)
    assert report["failing_cases"] == 1
    assert report["failing_cases_listed"][0]["case"] == bad_ref
    text = cli("health", cwd=tmp_path, env=env).stdout
    assert f"{bad_ref}: OverflowError" in text

    second = cli("tick", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "still cannot be computed (attempt 2)" in second.stderr
    with Session(engine) as s:
        assert len(s.exec(select(Alert).where(Alert.kind == AlertKind.OPS)).all()) == 1  # told once
    assert len(smtp_server.to("ops@kommune.example.dk")) == 1


def test_a_deadline_whose_planning_raises_costs_only_itself_and_is_planned_again(engine, session, staff):
    from watchdog import service
    from fixtures_servers import settings_for

    team, worker = staff
    good, _ = _case_with_follow_up(session, team, worker, "S-good", date(2024, 11, 1))
    # Due on 25-12-9999: computable, but a breach reminder a week later is not.
    late, _ = _case_with_follow_up(session, team, worker, "S-late", date(9999, 12, 25))
    session.commit()
    settings = settings_for(None, delivery={"ops_urls": ["mailto://ops@kommune.example.dk"]})

    report = service.poll(engine, settings, now=at("2024-06-01 12:00"))  # before: OverflowError
    assert report.cases_recomputed == 2
    with Session(engine) as s:
        planned = {a.deadline_id for a in s.exec(select(Alert)) if a.deadline_id}
        assert good.id in {s.get(Deadline, d).case_id for d in planned}
        [failure] = deadline_marks.list_failures(s)
        assert failure.case_ref == "S-late" and "alert planning" in failure.error and "OverflowError" in failure.error
        stuck = s.exec(select(Deadline).where(Deadline.case_id == late.id, Deadline.duty == "follow_up",
                                              Deadline.due > at("9999-01-01 00:00"))).one()
        assert stuck.id not in planned
        assert stuck.next_alert_at is not None and stuck.next_alert_at <= at("2024-06-01 12:00")
        assert len(s.exec(select(Alert).where(Alert.stage == "recompute_failure")).all()) == 1

    service.poll(engine, settings, now=at("2024-06-01 12:05"))  # tried again, told once
    with Session(engine) as s:
        assert deadline_marks.list_failures(s)[0].attempts == 2
        assert len(s.exec(select(Alert).where(Alert.stage == "recompute_failure")).all()) == 1
