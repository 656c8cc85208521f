"""How a duty instance's status follows from its due time, its facts and ``now``. Pure.

- met at or before due → ``met``; after due → ``met_late``;
- not met: ``breached`` once ``now`` >= due, else ``open``;
- a lawful exception ("Nej, men lovlig grund") → ``excepted`` with the reason recorded;
- the duty stopped applying before it fell due (case closed, measure ended) → ``not_applicable``.

A fact counts only from its own instant: a fact dated after ``now`` has not happened yet. So for
fixed facts the status only moves forward as ``now`` grows (open → breached/excepted → met_late),
and the due instant never depends on ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from watchdog.rules.calendar import regime_for
from watchdog.rules.citations import citation_for
from watchdog.rules.types import ComputedDeadline, Duty, Status, SubjectKind, fast_init

#: For properties and reports: a status never moves to a lower rank for fixed facts.
STATUS_RANK = {
    Status.OPEN: 0,
    Status.BREACHED: 1,
    Status.EXCEPTED: 1,
    Status.MET: 2,
    Status.MET_LATE: 2,
    Status.NOT_APPLICABLE: 2,
}


def happened(instant: datetime | None, now: datetime) -> datetime | None:
    """``instant`` if it is at or before ``now``, else None (it has not happened yet)."""
    return instant if instant is not None and instant <= now else None


@fast_init
@dataclass(frozen=True, slots=True)
class Instance:
    """What a duty rule decides; ``settle`` turns it into a ComputedDeadline as of ``now``."""

    duty: Duty
    case_id: int
    subject_kind: SubjectKind
    subject_id: int
    clock_start: datetime
    due: datetime
    seq: int = 0
    met_at: datetime | None = None
    # A lawful exception and the instant it took effect (None = from the start).
    exception_reason: str | None = None
    exception_at: datetime | None = None
    # Whether an exception shows only once the due time has passed (the four-month
    # investigation with an interim assessment: until then it can still be met in time).
    exception_from_due: bool = False
    # The duty stops applying at this instant (case closed, measure ended), with why.
    ends_at: datetime | None = None
    ends_because: str | None = None
    responsible_worker_id: int | None = None
    municipal_policy: bool = False
    variant: str | None = None  # citation variant (e.g. "ungeplan", "later")
    note: str | None = None


def settle(item: Instance, now: datetime) -> ComputedDeadline:
    regime = regime_for(item.clock_start)
    citation = citation_for(item.duty, regime, item.variant).text
    met_at = happened(item.met_at, now)
    exception = item.exception_reason
    if exception is not None and item.exception_at is not None and happened(item.exception_at, now) is None:
        exception = None
    ends_at = happened(item.ends_at, now)
    note = item.note

    # The duty stopped applying before it fell due; something done after that does not count.
    ended = ends_at is not None and ends_at < item.due
    if met_at is not None and met_at <= item.due and not (ended and ends_at < met_at):
        status = Status.MET
        exception = None
    elif ended:
        status = Status.NOT_APPLICABLE
        exception = None
        note = _join(note, item.ends_because)
    elif exception is not None and (not item.exception_from_due or now >= item.due):
        status = Status.EXCEPTED
    elif met_at is not None:
        status = Status.MET_LATE
        exception = None
    else:
        status = Status.BREACHED if now >= item.due else Status.OPEN
        exception = None
    return ComputedDeadline(
        duty=item.duty,
        case_id=item.case_id,
        subject_kind=item.subject_kind,
        subject_id=item.subject_id,
        seq=item.seq,
        regime=regime,
        citation=citation,
        clock_start=item.clock_start,
        due=item.due,
        status=status,
        met_at=met_at,
        exception_reason=exception,
        responsible_worker_id=item.responsible_worker_id,
        municipal_policy=item.municipal_policy,
        note=note,
    )


def _join(a: str | None, b: str | None) -> str | None:
    parts = [p for p in (a, b) if p]
    return "; ".join(parts) if parts else None
