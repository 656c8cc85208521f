"""The case facts the rules count from: frozen, plain values. Pure.

Built from case-store rows by ``watchdog.case_facts.load_case_facts`` (one bulk load per batch of
cases). Every instant is aware UTC; plain calendar dates (birth date, planned follow-up) are
``date``. Kinds are the case store's own enums (plain ``StrEnum`` values, no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from watchdog.casestore import InvestigationKind, MeasureKind
from watchdog.rules.types import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class NotificationFacts:
    """An underretning."""

    id: int
    received_at: datetime
    professional_notifier: bool = False
    assessed_at: datetime | None = None
    assessed_by_id: int | None = None
    receipt_confirmed_at: datetime | None = None
    child_in_support: bool = False  # already receives support or is placed: reassessment due
    reassessed_at: datetime | None = None
    reassessment_participant_ids: frozenset[int] = frozenset()


@fast_init
@dataclass(frozen=True, slots=True)
class InvestigationFacts:
    """A børnefaglig undersøgelse."""

    id: int
    aware_at: datetime
    kind: InvestigationKind = InvestigationKind.NEW
    completed_at: datetime | None = None
    interim_assessed_at: datetime | None = None  # foreløbig vurdering
    notification_id: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class FollowUpFacts:
    id: int
    performed_at: datetime
    next_planned_on: date | None = None  # BL § 95, stk. 3: the next follow-up as decided


@fast_init
@dataclass(frozen=True, slots=True)
class VisitFacts:
    id: int
    visited_at: datetime
    child_conversation: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class MeasureFacts:
    """A decision on a measure and its effect, with its follow-ups and supervision visits."""

    id: int
    kind: MeasureKind
    decided_at: datetime
    legal_basis: str = ""
    effected_at: datetime | None = None
    ended_at: datetime | None = None
    investigation_id: int | None = None  # run alongside (BL § 95, stk. 2, nr. 1)
    child_conversation_at: datetime | None = None
    child_conversation_exemption: str | None = None
    plan_at: datetime | None = None
    plan_required: bool = True
    follow_ups: tuple[FollowUpFacts, ...] = ()
    visits: tuple[VisitFacts, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class CaseFacts:
    id: int
    opened_at: datetime
    worker_id: int | None = None  # the responsible caseworker
    birth_date: date | None = None
    closed_at: datetime | None = None
    aftercare_decided_at: datetime | None = None  # decision on support after 18
    notifications: tuple[NotificationFacts, ...] = ()
    investigations: tuple[InvestigationFacts, ...] = ()
    measures: tuple[MeasureFacts, ...] = field(default=())

    def investigation(self, investigation_id: int | None) -> InvestigationFacts | None:
        for item in self.investigations:
            if item.id == investigation_id:
                return item
        return None
