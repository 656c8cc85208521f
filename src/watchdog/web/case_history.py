"""*Sag*: one case's deadlines with their history and every alert about them. I/O: the database (reads).

The evidence a leader shows Ankestyrelsen's supervision: for each deadline of the case, every status
change the outcome log holds (when, from what, to what), every alert planned or sent about it, and
each delivery attempt (when, by which process, the result), and every "jeg er på sagen"
acknowledgement made on it. ``case_history`` is everything the page shows, in one call (the page
benchmark's floor).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from watchdog.acknowledgements import AckView, list_acknowledgements
from watchdog.casestore import Case, Team, Worker
from watchdog.deadlines import Deadline, OutcomeEvent
from watchdog.outbox import DeliveryAttempt
from watchdog.reports.digest import case_link_for
from watchdog.rules.types import Status
from watchdog.web.queries import SentAlert, alerts_about


@dataclass(frozen=True)
class HistoryEvent:
    at: datetime
    kind: str
    from_status: Status | None
    to_status: Status | None
    detail: str | None


@dataclass(frozen=True)
class Attempt:
    at: datetime
    worker: str
    ok: bool
    permanent: bool
    detail: str | None


@dataclass(frozen=True)
class DeadlineHistory:
    deadline: Deadline
    responsible: str | None
    events: tuple[HistoryEvent, ...]
    alerts: tuple[tuple[SentAlert, tuple[Attempt, ...]], ...]


@dataclass(frozen=True)
class CaseHistory:
    case: Case
    team: Team
    worker: Worker | None
    link: str
    deadlines: tuple[DeadlineHistory, ...]
    acks: dict[int, tuple[AckView, ...]]  # per deadline id, open and ended, soonest end first

    def open_acks(self, now: datetime) -> dict[int, AckView]:
        """The acknowledgement still open at ``now`` of each deadline that has one."""
        return {a.deadline_id: a for found in self.acks.values() for a in found if a.is_open(now)}


def find_case(session: Session, case_ref: str) -> Case | None:
    return session.exec(select(Case).where(Case.ext_id == case_ref)).first()


def responsible_ids(session: Session, case: Case) -> set[int]:
    """The workers responsible for the case or one of its deadlines (who may open it as a caseworker)."""
    ids = {case.worker_id} if case.worker_id else set()
    ids.update(w for w in session.exec(select(Deadline.responsible_worker_id).where(
        Deadline.case_id == case.id, Deadline.responsible_worker_id.is_not(None)).distinct()).all())
    return ids


def case_history(session: Session, case: Case, *, settings, now: datetime) -> CaseHistory:
    deadlines = list(session.exec(select(Deadline).where(Deadline.case_id == case.id)
                                  .order_by(Deadline.due, Deadline.id)).all())
    ids = [d.id for d in deadlines]
    events: dict[int, list[HistoryEvent]] = defaultdict(list)
    # Sorted here, not by ORDER BY: SQLite would walk the whole log by its time index instead of
    # taking the case's few rows by case_id (benchmarks/pages.py).
    for e in sorted(session.exec(select(OutcomeEvent).where(OutcomeEvent.case_id == case.id)),
                    key=lambda e: (e.occurred_at, e.id)):
        events[e.deadline_id].append(HistoryEvent(e.occurred_at, e.kind, Status(e.from_status) if e.from_status else None,
                                                  Status(e.to_status) if e.to_status else None, e.detail))
    alerts = alerts_about(session, ids, delivered_only=False)
    alert_ids = [a.alert_id for found in alerts.values() for a in found]
    attempts: dict[int, list[Attempt]] = defaultdict(list)
    if alert_ids:
        for a in session.exec(select(DeliveryAttempt).where(DeliveryAttempt.alert_id.in_(alert_ids))
                              .order_by(DeliveryAttempt.at, DeliveryAttempt.id)):
            attempts[a.alert_id].append(Attempt(a.at, a.worker, a.ok, a.permanent, a.detail))
    worker_ids = {d.responsible_worker_id for d in deadlines if d.responsible_worker_id} | (
        {case.worker_id} if case.worker_id else set())
    names = dict(session.execute(select(Worker.id, Worker.name).where(Worker.id.in_(list(worker_ids)))).all()) \
        if worker_ids else {}
    acks: dict[int, list[AckView]] = defaultdict(list)
    for a in list_acknowledgements(session, now=now, case_id=case.id, open_only=False):
        acks[a.deadline_id].append(a)
    return CaseHistory(
        case=case, team=session.get(Team, case.team_id),
        worker=session.get(Worker, case.worker_id) if case.worker_id else None,
        link=case_link_for(case.ext_id, case.link, settings),
        deadlines=tuple(DeadlineHistory(
            d, names.get(d.responsible_worker_id), tuple(events.get(d.id, ())),
            tuple((a, tuple(attempts.get(a.alert_id, ()))) for a in alerts.get(d.id, ())))
            for d in deadlines),
        acks={deadline_id: tuple(found) for deadline_id, found in acks.items()})
