"""The contract of the deadline rules: duties, regimes, statuses, and a computed deadline.

Pure: no database, no clock, no network. Every other stage (store, alerts, reports, API) speaks
in these types, so a duty's id here is the id everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Duty(StrEnum):
    ASSESSMENT_24H = "assessment_24h"
    REASSESSMENT = "reassessment"
    INVESTIGATION_4M = "investigation_4m"
    FOLLOW_UP = "follow_up"
    RECEIPT_CONFIRMATION = "receipt_confirmation"
    CHILD_CONVERSATION = "child_conversation"
    PLAN = "plan"
    SUPERVISION_VISIT = "supervision_visit"
    AFTERCARE_DECISION = "aftercare_decision"


class Regime(StrEnum):
    SEL = "SEL"  # Serviceloven: clock started before 2024-01-01 00:00 Europe/Copenhagen
    BL = "BL"  # Barnets lov: clock started on or after that instant


class Status(StrEnum):
    OPEN = "open"
    MET = "met"
    MET_LATE = "met_late"
    BREACHED = "breached"
    EXCEPTED = "excepted"  # "Nej, men lovlig grund": lawful reason recorded
    NOT_APPLICABLE = "not_applicable"

    @property
    def is_final(self) -> bool:
        return self in (Status.MET, Status.MET_LATE, Status.NOT_APPLICABLE)


class SubjectKind(StrEnum):
    """Which case-store record a deadline is about."""

    NOTIFICATION = "notification"
    INVESTIGATION = "investigation"
    MEASURE = "measure"
    CASE = "case"


@dataclass(frozen=True, slots=True)
class ComputedDeadline:
    """One instance of one legal duty, as the rules compute it from the case facts and ``now``.

    ``due`` depends only on the facts and the law; ``status`` also on ``now``.
    ``seq`` numbers the instances of a recurring duty (follow-up 0, 1, 2 …; visits per period).
    """

    duty: Duty
    case_id: int
    subject_kind: SubjectKind
    subject_id: int
    seq: int
    regime: Regime
    citation: str
    clock_start: datetime
    due: datetime
    status: Status
    met_at: datetime | None = None
    exception_reason: str | None = None
    responsible_worker_id: int | None = None
    municipal_policy: bool = False  # due time set by municipal policy, not the statute ("kommunal frist")
    note: str | None = None

    @property
    def key(self) -> str:
        """Stable identity across recomputations: the same duty instance always has the same key."""
        return f"{self.duty.value}:{self.subject_kind.value}:{self.subject_id}:{self.seq}"
