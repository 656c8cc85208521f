"""A leader's counts per caseworker (``message_context.team_counts``): open breaches (stored, or
open past due), and open deadlines due within the week — of the asked teams' cases only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchdog.casestore import Case, Team, Worker
from watchdog.deadlines import Deadline, Duty, Regime, Status, SubjectKind
from watchdog.message_context import DUE_SOON_DAYS, NO_WORKER_DA, WorkerCount, team_counts

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_counts_breaches_and_the_weeks_deadlines_per_caseworker_of_the_asked_teams_only(session):
    north, south = Team(ext_id="T-N", name="Nord"), Team(ext_id="T-S", name="Syd")
    session.add_all([north, south])
    session.flush()
    anna = Worker(ext_id="W-A", name="Anna", email="a@k.example", team_id=north.id)
    bo = Worker(ext_id="W-B", name="Bo", email="b@k.example", team_id=north.id)
    carl = Worker(ext_id="W-C", name="Carl", email="c@k.example", team_id=south.id)
    session.add_all([anna, bo, carl])
    session.flush()
    mine = Case(ext_id="S-1", team_id=north.id, opened_at=NOW, facts_changed_at=NOW)
    theirs = Case(ext_id="S-2", team_id=south.id, opened_at=NOW, facts_changed_at=NOW)
    session.add_all([mine, theirs])
    session.flush()
    soon = timedelta(days=DUE_SOON_DAYS)
    rows = [  # (case, worker, status, due)
        (mine, anna, Status.BREACHED, NOW - timedelta(days=3)),    # a breach
        (mine, anna, Status.OPEN, NOW - timedelta(hours=1)),       # open past due: a breach not stored yet
        (mine, anna, Status.OPEN, NOW + timedelta(days=2)),        # due within the week
        (mine, anna, Status.OPEN, NOW + soon),                     # due at the week's very end: counted
        (mine, anna, Status.OPEN, NOW + soon + timedelta(minutes=1)),  # after the week: not counted
        (mine, anna, Status.MET, NOW - timedelta(days=1)),         # done: not counted
        (mine, bo, Status.EXCEPTED, NOW - timedelta(days=1)),      # lawful reason: not counted
        (mine, None, Status.OPEN, NOW + timedelta(days=1)),        # nobody responsible
        (theirs, carl, Status.BREACHED, NOW - timedelta(days=1)),  # another team's: not asked for
    ]
    for i, (case, worker, status, due) in enumerate(rows):
        session.add(Deadline(key=f"k{i}", duty=Duty.INVESTIGATION_4M, case_id=case.id, subject_kind=SubjectKind.CASE,
                             subject_id=case.id, seq=i, regime=Regime.BL, citation="BL § 1",
                             clock_start=due - timedelta(days=120), due=due, status=status,
                             responsible_worker_id=worker.id if worker else None, computed_at=NOW,
                             status_changed_at=NOW))
    session.flush()

    assert team_counts(session, [north.id], now=NOW) == (WorkerCount("Anna", 2, 2), WorkerCount(NO_WORKER_DA, 0, 1))
    assert team_counts(session, [south.id], now=NOW) == (WorkerCount("Carl", 1, 0),)
    assert team_counts(session, [north.id, south.id], now=NOW)[0] == WorkerCount("Anna", 2, 2)
    assert team_counts(session, [], now=NOW) == ()
