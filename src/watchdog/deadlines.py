"""Stage 2, deadlines: one persisted row per legal duty instance, and the outcome log.

I/O: reads the case store, writes ``deadline`` and appends to ``outcome_event``.
The computing itself is in ``watchdog.rules`` (pure); this module only persists its results.
The outcome log is append-only: a status change is a new row, never an update.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from watchdog.rules.types import Duty, Regime, Status, SubjectKind


class Deadline(SQLModel, table=True):
    __tablename__ = "deadline"
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


class OutcomeKind:
    STATUS = "status"  # a deadline's status changed (first computation included: from_status None)
    ALERT_SENT = "alert_sent"  # an alert about the deadline was delivered


class OutcomeEvent(SQLModel, table=True):
    """Append-only log: every status change of a deadline and every alert sent, with its time."""

    __tablename__ = "outcome_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    kind: str = Field(max_length=20, index=True)
    deadline_id: int = Field(foreign_key="deadline.id", index=True)
    deadline_key: str = Field(max_length=200)
    case_id: int = Field(index=True)
    duty: Duty = Field(index=True)
    from_status: Status | None = None
    to_status: Status | None = None
    detail: str | None = Field(default=None, max_length=2000)
