"""Test data for the report tests: deadlines with known outcomes, inserted directly.

Each deadline gets the outcome-log entries a poll would have written (first computation from
``None``, then each change), at the instants given, so the reports' "as of" rule has a log to read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from sqlmodel import Session

from watchdog.casestore import (
    Case, Investigation, InvestigationKind, Measure, MeasureKind, Notification, Team, Worker, WorkerRole,
)
from watchdog.clock import LOCAL_TZ, end_of_local_day
from watchdog.deadlines import Deadline, OutcomeEvent, OutcomeKind
from watchdog.rules.calendar import regime_for
from watchdog.rules.citations import citation_for
from watchdog.rules.types import Duty, Status, SubjectKind

_ids = count(1)


def local(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(UTC)


def due_on(day: str) -> datetime:
    """A duty due on a date is due at the end of that date."""
    return end_of_local_day(datetime.fromisoformat(day).date())


class Builder:
    """Adds teams, workers, cases and deadlines with their outcome log to a session."""

    def __init__(self, session: Session):
        self.s = session
        self.n = next(_ids) * 1000

    def _ext(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def team(self, ext_id: str, name: str | None = None) -> Team:
        t = Team(ext_id=ext_id, name=name or ext_id)
        self.s.add(t)
        self.s.flush()
        return t

    def worker(self, team: Team | None, name: str, *, role=WorkerRole.CASEWORKER, fte: float = 1.0,
               active: bool = True, teams_url: str | None = None, ext_id: str | None = None) -> Worker:
        w = Worker(ext_id=ext_id or self._ext("W"), name=name, email=f"{self._ext('m')}@kommune.example.dk",
                   role=role, fte=fte, team_id=team.id if team else None, active=active,
                   teams_workflow_url=teams_url)
        self.s.add(w)
        self.s.flush()
        return w

    def case(self, team: Team, *, ref: str | None = None, worker: Worker | None = None,
             opened: str = "2022-06-01", closed: str | None = None) -> Case:
        c = Case(ext_id=ref or self._ext("S"), team_id=team.id, worker_id=worker.id if worker else None,
                 opened_at=local(opened), closed_at=local(closed) if closed else None,
                 facts_changed_at=local(opened))
        self.s.add(c)
        self.s.flush()
        return c

    def subject(self, case: Case, duty: Duty, *, kind=InvestigationKind.NEW, reasoning: bool | None = None,
                start: datetime) -> tuple[SubjectKind, int]:
        if duty in (Duty.ASSESSMENT_24H, Duty.REASSESSMENT, Duty.RECEIPT_CONFIRMATION):
            n = Notification(ext_id=self._ext("N"), case_id=case.id, received_at=start,
                             child_in_support=duty == Duty.REASSESSMENT,
                             reassessment_reasoning_recorded=reasoning)
            self.s.add(n)
            self.s.flush()
            return SubjectKind.NOTIFICATION, n.id
        if duty == Duty.INVESTIGATION_4M:
            i = Investigation(ext_id=self._ext("I"), case_id=case.id, kind=kind, aware_at=start)
            self.s.add(i)
            self.s.flush()
            return SubjectKind.INVESTIGATION, i.id
        m = Measure(ext_id=self._ext("M"), case_id=case.id, kind=MeasureKind.SUPPORT,
                    legal_basis="SEL § 52, stk. 3, nr. 3", decided_at=start, effected_at=start)
        self.s.add(m)
        self.s.flush()
        return SubjectKind.MEASURE, m.id

    def deadline(self, case: Case, duty: Duty, *, due: datetime, history: list[tuple[datetime, Status]],
                 seq: int = 0, kind=InvestigationKind.NEW, reasoning: bool | None = None,
                 worker: Worker | None = None, start: datetime | None = None) -> Deadline:
        """A deadline whose status went through ``history`` [(logged at, status), …]."""
        start = start or due - timedelta(days=30)
        subject_kind, subject_id = self.subject(case, duty, kind=kind, reasoning=reasoning, start=start)
        regime = regime_for(start)
        final_at, final = history[-1]
        d = Deadline(
            key=f"{duty.value}:{subject_kind.value}:{subject_id}:{seq}", duty=duty, case_id=case.id,
            subject_kind=subject_kind, subject_id=subject_id, seq=seq, regime=regime,
            citation=citation_for(duty, regime).text, clock_start=start, due=due, status=final,
            responsible_worker_id=(worker or None) and worker.id, computed_at=final_at,
            status_changed_at=final_at,
            met_at=due - timedelta(hours=1) if final == Status.MET else None,
        )
        self.s.add(d)
        self.s.flush()
        before = None
        for logged_at, status in history:
            self.s.add(OutcomeEvent(occurred_at=logged_at, recorded_at=logged_at, kind=OutcomeKind.STATUS, deadline_id=d.id, deadline_key=d.key,
                                    case_id=case.id, duty=duty, from_status=before, to_status=status))
            before = status
        self.s.flush()
        return d

    def outcome(self, case: Case, duty: Duty, due_day: str, status: Status, **kw) -> Deadline:
        """A deadline due on ``due_day`` that was open from 30 days before and settled at its due time."""
        due = due_on(due_day) if "T" not in due_day else local(due_day)
        first = due - timedelta(days=30)
        if status == Status.OPEN:
            return self.deadline(case, duty, due=due, history=[(first, Status.OPEN)], **kw)
        if status == Status.MET:
            return self.deadline(case, duty, due=due, history=[(first, Status.OPEN), (due - timedelta(hours=1), status)], **kw)
        if status == Status.MET_LATE:
            return self.deadline(case, duty, due=due, history=[
                (first, Status.OPEN), (due + timedelta(minutes=5), Status.BREACHED), (due + timedelta(days=3), status)], **kw)
        return self.deadline(case, duty, due=due, history=[(first, Status.OPEN), (due + timedelta(minutes=5), status)], **kw)


def ishoj_2023(session: Session) -> Team:
    """Cases built to Ishøj's 2023 results (Ankestyrelsen's municipal report, tables 2.3, 5.12, 6.13, 6.14).

    Plus distractors that must not count: an updated investigation, a deadline not yet logged,
    deadlines outside the period, a second deadline of a case already counted, a later follow-up.
    """
    b = Builder(session)
    team = b.team("FAM", "Familierådgivningen")
    cw = b.worker(team, "Rådgiver Ras")
    cases = [b.case(team, ref=f"2023-{i:03d}", worker=cw) for i in range(1, 16)]
    D, S = Duty, Status
    # Table 2.3, four-month deadline: Ja 1, Nej, men lovlig grund 0, Nej 5 — of 6 new investigations.
    b.outcome(cases[0], D.INVESTIGATION_4M, "2023-03-10", S.MET)
    b.outcome(cases[1], D.INVESTIGATION_4M, "2023-04-30", S.BREACHED)
    b.outcome(cases[2], D.INVESTIGATION_4M, "2023-05-31", S.MET_LATE)
    b.outcome(cases[3], D.INVESTIGATION_4M, "2023-06-15", S.MET_LATE)
    b.outcome(cases[4], D.INVESTIGATION_4M, "2023-09-01", S.BREACHED)
    b.outcome(cases[5], D.INVESTIGATION_4M, "2023-12-31", S.MET_LATE)
    b.outcome(cases[6], D.INVESTIGATION_4M, "2023-07-01", S.BREACHED, kind=InvestigationKind.UPDATE)
    b.outcome(cases[0], D.INVESTIGATION_4M, "2023-11-01", S.BREACHED)  # case 1 already counted (Ja)
    b.outcome(cases[7], D.INVESTIGATION_4M, "2022-12-31", S.BREACHED)  # before the period
    b.outcome(cases[8], D.INVESTIGATION_4M, "2024-01-01", S.BREACHED)  # after the period
    b.outcome(cases[9], D.INVESTIGATION_4M, "2023-08-01", S.NOT_APPLICABLE)
    # Table 6.13, 24-hour assessment: Ja 4 of 4.
    for i, when in enumerate(["2023-02-01T10:00", "2023-04-12T23:30", "2023-08-20T08:15", "2023-10-02T14:00"]):
        b.outcome(cases[i], D.ASSESSMENT_24H, when, S.MET)
    b.outcome(cases[0], D.ASSESSMENT_24H, "2023-11-05T09:00", S.BREACHED)  # case 1's second: not counted
    # Table 6.14, reassessment: Ja 3, Nej (vurdering fremgår ikke) 0, Nej (ingen genvurdering) 1 — of 4.
    b.outcome(cases[10], D.REASSESSMENT, "2023-02-07", S.MET, reasoning=True)
    b.outcome(cases[11], D.REASSESSMENT, "2023-05-07", S.MET, reasoning=None)
    b.outcome(cases[12], D.REASSESSMENT, "2023-06-07", S.MET_LATE, reasoning=True)  # no statutory limit: Ja
    b.outcome(cases[13], D.REASSESSMENT, "2023-09-07", S.BREACHED)
    # Table 5.12, first follow-up within three months: Ja 3, Nej 2 — of 5.
    b.outcome(cases[0], D.FOLLOW_UP, "2023-03-01", S.MET)
    b.outcome(cases[1], D.FOLLOW_UP, "2023-05-01", S.MET)
    b.outcome(cases[2], D.FOLLOW_UP, "2023-07-01", S.MET)
    b.outcome(cases[3], D.FOLLOW_UP, "2023-09-01", S.MET_LATE)
    b.outcome(cases[4], D.FOLLOW_UP, "2023-10-01", S.BREACHED)
    b.outcome(cases[0], D.FOLLOW_UP, "2023-09-01", S.BREACHED, seq=1)  # a later follow-up: its own table
    # Logged only after the period: not counted as of the period's end.
    late = b.case(team, ref="2023-900")
    b.deadline(late, D.FOLLOW_UP, due=due_on("2023-12-01"), history=[(local("2024-02-01T09:00"), S.MET)])
    session.commit()
    return team
