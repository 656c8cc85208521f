"""Stage 1, the case store: teams, workers, absences, cases and the facts the law counts from.

Tables only (SQLModel). Every instant is an aware UTC datetime (SQLModel's UTCDateTime refuses a
naive one); plain calendar dates (birth dates, absences, planned follow-ups) are ``date``.
There is no CPR-number column and no child's name: a child is known by the case reference only.

``ext_id`` on every table is the case system's own id: imports upsert by it.
``Case.facts_changed_at`` says when any fact of the case last changed (for people). What the poll
goes by is the case's dirty mark (``dirty``, ``facts_version``; see ``watchdog.deadline_marks``):
set in the same transaction as the facts, so no commit can be missed, however late it lands.
A new case is dirty; setting ``facts_changed_at`` on a stored case through the ORM marks it too.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Index, event, inspect, true
from sqlmodel import Field, SQLModel, UniqueConstraint


class WorkerRole(StrEnum):
    CASEWORKER = "caseworker"
    LEADER = "leader"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    HEAD = "head"  # head of unit (afdelingsleder): sees everything, second escalation step


class InvestigationKind(StrEnum):
    NEW = "new"  # a new børnefaglig undersøgelse: the four-month question applies
    UPDATE = "update"  # an update of an earlier one: the four-month question does not apply


class MeasureKind(StrEnum):
    """What was decided, in the terms the deadline rules need."""

    SUPPORT = "support"  # BL § 32 / SEL § 52, stk. 3 (e.g. familiebehandling, kontaktperson)
    PLACEMENT_CONSENT = "placement_consent"  # BL § 46 / SEL § 52, stk. 3, nr. 7
    PLACEMENT_NO_CONSENT = "placement_no_consent"  # BL § 47 / SEL § 58
    YOUTH_CRIME = "youth_crime"  # ungdomskriminalitet measure
    OTHER = "other"

    @property
    def is_placement(self) -> bool:
        return self in (MeasureKind.PLACEMENT_CONSENT, MeasureKind.PLACEMENT_NO_CONSENT)


class Team(SQLModel, table=True):
    __tablename__ = "team"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    # The team's duty address (døgnvagt) for 24-hour warnings, and its Teams workflow URL.
    duty_email: str | None = Field(default=None, max_length=320)
    duty_teams_url: str | None = Field(default=None, max_length=2000)


class Worker(SQLModel, table=True):
    __tablename__ = "worker"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    teams_workflow_url: str | None = Field(default=None, max_length=2000)
    role: WorkerRole = Field(default=WorkerRole.CASEWORKER)
    fte: float = Field(default=1.0)  # full-time equivalent as a caseworker (0.0–1.0)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    active: bool = Field(default=True)


class Absence(SQLModel, table=True):
    __tablename__ = "absence"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    worker_id: int = Field(foreign_key="worker.id", index=True)
    starts_on: date
    ends_on: date  # inclusive
    substitute_id: int | None = Field(default=None, foreign_key="worker.id")
    # Where the row comes from: "import" (the case system, via import or the API; read-only on the
    # web) or "web" (a leader registered it on the team page; ext_id "web:…"). See watchdog.absences.
    source: str = Field(default="import", max_length=10, sa_column_kwargs={"server_default": "import"})
    registered_by_id: int | None = Field(default=None, foreign_key="worker.id")  # web rows: the leader


class Case(SQLModel, table=True):
    __tablename__ = "case_file"  # "case" is a reserved word in SQL
    # The poll's "which cases wait for a recompute": dirty rows in id order, from the index alone.
    __table_args__ = (Index("ix_case_file_dirty", "dirty", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)  # the case reference
    team_id: int = Field(foreign_key="team.id", index=True)
    worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    birth_date: date | None = None  # only for the duties that count from the 18th birthday
    opened_at: datetime
    closed_at: datetime | None = None
    # Decision on support after 18 (BL § 111 / SEL § 68, stk. 11) for a placed child.
    aftercare_decided_at: datetime | None = None
    link: str | None = Field(default=None, max_length=2000)  # overrides the configured URL template
    facts_changed_at: datetime = Field(index=True)
    # The dirty mark: every change of the facts adds one to the version and sets ``dirty`` in the
    # same transaction; a recompute clears ``dirty`` only if the version is still the one it read
    # before loading the facts. New rows start dirty (also rows written by plain SQL).
    facts_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    dirty: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


@event.listens_for(Case.facts_changed_at, "set", propagate=True)
def _mark_dirty_on_change(target: Case, value, old, _initiator) -> None:
    """A stored case whose ``facts_changed_at`` is set through the ORM waits for a recompute."""
    if inspect(target).has_identity and value != old:
        target.dirty = True
        target.facts_version = Case.facts_version + 1  # in SQL: a concurrent bump is not lost


class Notification(SQLModel, table=True):
    """An underretning."""

    __tablename__ = "notification"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    received_at: datetime = Field(index=True)
    professional_notifier: bool = False
    assessed_at: datetime | None = None  # the 24-hour assessment
    assessed_by_id: int | None = Field(default=None, foreign_key="worker.id")
    receipt_confirmed_at: datetime | None = None  # to a professional notifier
    # The child already receives support or is placed: a reassessment (genvurdering) is due.
    child_in_support: bool = False
    reassessed_at: datetime | None = None
    # Whether the municipality's concrete assessment appears in the reassessment (barometer).
    reassessment_reasoning_recorded: bool | None = None


class ReassessmentParticipant(SQLModel, table=True):
    """Who took part in a notification's reassessment."""

    __tablename__ = "reassessment_participant"
    __table_args__ = (UniqueConstraint("notification_id", "worker_id"),)
    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    worker_id: int = Field(foreign_key="worker.id")


class Investigation(SQLModel, table=True):
    """A børnefaglig undersøgelse (BFU)."""

    __tablename__ = "investigation"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    notification_id: int | None = Field(default=None, foreign_key="notification.id")
    kind: InvestigationKind = InvestigationKind.NEW
    aware_at: datetime  # the municipality became aware the child may need special support
    completed_at: datetime | None = None
    interim_assessed_at: datetime | None = None  # foreløbig vurdering


class Measure(SQLModel, table=True):
    """A decision on a measure (afgørelse om foranstaltning/indsats) and its effect."""

    __tablename__ = "measure"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    kind: MeasureKind
    legal_basis: str = Field(max_length=200)  # e.g. "BL § 32, stk. 1, nr. 3"
    decided_at: datetime
    effected_at: datetime | None = None  # iværksat: the follow-up clock starts here
    ended_at: datetime | None = None
    # Investigation run alongside the measure (BL § 95, stk. 2: follow-up at its completion).
    investigation_id: int | None = Field(default=None, foreign_key="investigation.id")
    child_conversation_at: datetime | None = None
    child_conversation_exemption: str | None = Field(default=None, max_length=500)
    plan_at: datetime | None = None  # handleplan / barnets plan / ungeplan
    plan_required: bool = True  # BL § 32 support: decided at the decision whether a plan is needed


class FollowUp(SQLModel, table=True):
    """An opfølgning on a measure."""

    __tablename__ = "follow_up"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    measure_id: int = Field(foreign_key="measure.id", index=True)
    performed_at: datetime
    next_planned_on: date | None = None  # BL § 95, stk. 3: the next follow-up as decided


class SupervisionVisit(SQLModel, table=True):
    """A tilsynsbesøg with a placed child."""

    __tablename__ = "supervision_visit"
    id: int | None = Field(default=None, primary_key=True)
    ext_id: str = Field(unique=True, index=True, max_length=64)
    measure_id: int = Field(foreign_key="measure.id", index=True)
    visited_at: datetime
    child_conversation: bool = True
