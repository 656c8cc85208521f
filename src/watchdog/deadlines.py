"""Stage 2, deadlines: the persisted rows (one per legal duty instance) and the reading of them.

This module holds the ``deadline`` and ``poll_state`` tables and the queries that list persisted
rows (the CLI, reports and pages read these, never recomputed ones). Computing and writing them
is ``watchdog.recompute`` (the batches, the poll) with ``watchdog.deadline_writer`` (the bulk
writes) and ``watchdog.case_facts`` (the facts loaded for the rules); the outcome log is
``watchdog.outcome_log``. Deadline rows are never deleted (the log and the outbox reference them):
a duty that no longer arises from the facts becomes ``not_applicable``.

Functions take the session and never commit: the caller owns the transaction
(``watchdog.db.session_scope``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Index, select
from sqlmodel import Field, Session, SQLModel

from watchdog.clock import ensure_aware
from watchdog.db import dialect_insert
from watchdog.outcome_log import OutcomeEvent, OutcomeKind, record_alert_sent
from watchdog.rules.types import Duty, Regime, Status, SubjectKind

__all__ = ["Deadline", "DeadlineView", "OutcomeEvent", "OutcomeKind", "PollState", "chunks", "list_deadlines",
           "poll_state", "record_alert_sent"]

class Deadline(SQLModel, table=True):
    __tablename__ = "deadline"
    # The poll's "open deadlines whose due time has passed" is a range scan on this index; with
    # the single-column ones it scanned every open deadline (100 ms at 100,000 cases).
    __table_args__ = (Index("ix_deadline_status_due", "status", "due"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True, max_length=200)  # ComputedDeadline.key
    duty: Duty = Field(index=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    subject_kind: SubjectKind
    subject_id: int
    seq: int = 0
    regime: Regime
    citation: str = Field(max_length=100)
    clock_start: datetime
    due: datetime = Field(index=True)
    status: Status = Field(index=True)
    met_at: datetime | None = None
    exception_reason: str | None = Field(default=None, max_length=500)
    responsible_worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    municipal_policy: bool = False
    note: str | None = Field(default=None, max_length=500)
    computed_at: datetime
    status_changed_at: datetime
    # When alert planning next needs to look at this deadline (its next ladder stage, breach or
    # reminder; None = never again unless the deadline changes). Every write here sets it to the
    # write's ``now``; planning moves it on. The poll plans only rows whose time has come.
    next_alert_at: datetime | None = Field(default=None, index=True)
    # When the service first computed this deadline (set once, at insert). A deadline first seen
    # long after its breach (go-live, a backfill) is summarised to the leaders, not escalated
    # one by one (``alerts.backlog_days``).
    first_seen_at: datetime | None = None


class PollState(SQLModel, table=True):
    """A named state row of a recurring job (the alert planner keeps its policy hash here).

    The deadline poll no longer keeps a time watermark here (``watermark_*`` are unused by it):
    a watermark on ``Case.facts_changed_at`` skipped an import that committed after a later
    poll had moved past its start time. It goes by dirty marks (``watchdog.deadline_marks``).
    """

    __tablename__ = "poll_state"
    name: str = Field(primary_key=True, max_length=50)
    watermark_at: datetime | None = None
    watermark_case_id: int = 0
    polled_at: datetime
    # What the state was computed with (the alert planner's: a hash of the alert policy), so a
    # changed policy can be noticed and everything planned afresh once.
    fingerprint: str | None = Field(default=None, max_length=64)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """``items`` in slices of at most ``size`` (IN lists stay within the drivers' parameter limits)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def poll_state(session: Session, name: str, now: datetime) -> PollState:
    """The named state row (the poll's watermark, the planner's policy hash), created empty on
    first use; a plain copy, not an ORM object. Does not commit."""
    insert = dialect_insert(session)
    session.execute(insert(PollState).values(name=name, watermark_at=None, watermark_case_id=0,
                                             polled_at=now).on_conflict_do_nothing(index_elements=["name"]))
    row = session.execute(select(PollState.watermark_at, PollState.watermark_case_id, PollState.fingerprint)
                          .where(PollState.name == name)).one()
    return PollState(name=name, watermark_at=row.watermark_at, watermark_case_id=row.watermark_case_id,
                     polled_at=now, fingerprint=row.fingerprint)


# --------------------------------------------------------------------------------------------
# Listing (the CLI and reports read persisted rows, not recomputed ones)

@dataclass(frozen=True)
class DeadlineView:
    """A persisted deadline with the references a reader needs (no names of children, no CPR)."""

    id: int
    key: str
    case_ref: str
    team: str
    duty: Duty
    regime: Regime
    citation: str
    clock_start: datetime
    due: datetime
    status: Status
    met_at: datetime | None
    exception_reason: str | None
    responsible: str | None  # the worker's ext_id
    municipal_policy: bool
    note: str | None


def list_deadlines(session: Session, *, statuses: Sequence[Status] = (), duties: Sequence[Duty] = (),
                   team_ext_id: str | None = None, worker_ext_id: str | None = None,
                   due_from: datetime | None = None, due_to: datetime | None = None,
                   limit: int | None = None) -> list[DeadlineView]:
    """Persisted deadlines, soonest due first, filtered. An unknown team or worker is an error."""
    from watchdog.casestore import Case, Team, Worker
    from watchdog.errors import WatchdogError

    query = (
        select(Deadline, Case.ext_id.label("case_ref"), Team.ext_id.label("team_ref"),
               Worker.ext_id.label("worker_ref"))
        .join(Case, Case.id == Deadline.case_id)
        .join(Team, Team.id == Case.team_id)
        .outerjoin(Worker, Worker.id == Deadline.responsible_worker_id)
        .order_by(Deadline.due, Deadline.id)
    )
    if statuses:
        query = query.where(Deadline.status.in_(list(statuses)))
    if duties:
        query = query.where(Deadline.duty.in_(list(duties)))
    if team_ext_id is not None:
        team_id = session.execute(select(Team.id).where(Team.ext_id == team_ext_id)).scalar_one_or_none()
        if team_id is None:
            raise WatchdogError(f"unknown team {team_ext_id!r} (give the team's ext_id)")
        query = query.where(Case.team_id == team_id)
    if worker_ext_id is not None:
        worker_id = session.execute(select(Worker.id).where(Worker.ext_id == worker_ext_id)).scalar_one_or_none()
        if worker_id is None:
            raise WatchdogError(f"unknown worker {worker_ext_id!r} (give the worker's ext_id)")
        query = query.where(Deadline.responsible_worker_id == worker_id)
    if due_from is not None:
        query = query.where(Deadline.due >= ensure_aware(due_from))
    if due_to is not None:
        query = query.where(Deadline.due <= ensure_aware(due_to))
    if limit:
        query = query.limit(limit)
    return [
        DeadlineView(
            id=d.id, key=d.key, case_ref=case_ref, team=team_ref, duty=d.duty, regime=d.regime,
            citation=d.citation, clock_start=d.clock_start, due=d.due, status=d.status, met_at=d.met_at,
            exception_reason=d.exception_reason, responsible=worker_ref, municipal_policy=d.municipal_policy,
            note=d.note,
        )
        for d, case_ref, team_ref, worker_ref in session.execute(query)
    ]
