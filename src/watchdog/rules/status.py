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
from watchdog.rules.types import ComputedDeadline, Duty, Status, SubjectKind, deadline_key, fast_init

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


def _decide(item: Instance, now: datetime) -> tuple[Status, datetime | None, str | None, str | None]:
    """(status, met_at, exception reason, note) of ``item`` as of ``now``."""
    # ``happened`` inlined: this runs for every deadline of a recompute.
    met_at = item.met_at
    if met_at is not None and met_at > now:
        met_at = None
    exception = item.exception_reason
    if exception is not None and item.exception_at is not None and item.exception_at > now:
        exception = None
    ends_at = item.ends_at
    if ends_at is not None and ends_at > now:
        ends_at = None
    note = item.note

    # The duty stopped applying before it fell due; something done after that does not count.
    ended = ends_at is not None and ends_at < item.due
    if met_at is not None and met_at <= item.due and not (ended and ends_at < met_at):
        return Status.MET, met_at, None, note
    if ended:
        return Status.NOT_APPLICABLE, met_at, None, _join(note, item.ends_because)
    if exception is not None and (not item.exception_from_due or now >= item.due):
        return Status.EXCEPTED, met_at, exception, note
    if met_at is not None:
        return Status.MET_LATE, met_at, None, note
    return (Status.BREACHED if now >= item.due else Status.OPEN), met_at, None, note


def settled_values(item: Instance, now: datetime) -> tuple:
    """What ``settle(item, now)`` holds, as a tuple in ComputedDeadline's field order (``origin``
    and ``key`` left out): the recompute compares and writes these without building the object."""
    regime = regime_for(item.clock_start)
    citation = citation_for(item.duty, regime, item.variant).text
    status, met_at, exception, note = _decide(item, now)
    return (item.duty, item.case_id, item.subject_kind, item.subject_id, item.seq, regime, citation,
            item.clock_start, item.due, status, met_at, exception, item.responsible_worker_id,
            item.municipal_policy, note)


def settle(item: Instance, now: datetime) -> ComputedDeadline:
    # Positionally, in ComputedDeadline's field order: this runs for every deadline, and binding
    # sixteen keywords cost a sixth of the rules.
    return ComputedDeadline(*settled_values(item, now), item)


def key_of(item: Instance) -> str:
    """The key of the deadline ``item`` settles into (``ComputedDeadline.key``)."""
    return deadline_key(item.duty, item.subject_kind, item.subject_id, item.seq)


def history(item: Instance, now: datetime) -> tuple[tuple[datetime, Status], ...]:
    """The statuses ``item`` went through up to ``now``, each with the instant it began in the case.

    A status depends only on which of the item's instants (due, completion, lawful reason, end)
    have passed, so it can change only at them: the status at each, from the clock start on,
    with repeats left out. The first point is the clock start (also when that is still ahead);
    the last is the status ``settle(item, now)`` gives. A fact dated before the clock start counts
    from the clock start. Pure.
    """
    start = item.clock_start
    instants = {start}
    for instant in (item.due, item.met_at, item.exception_at, item.ends_at):
        if instant is not None and start < instant <= now:
            instants.add(instant)
    out: list[tuple[datetime, Status]] = []
    for instant in sorted(instants):
        status = _decide(item, min(instant, now))[0]
        if not out or out[-1][1] != status:
            out.append((instant, status))
    return tuple(out)


def _join(a: str | None, b: str | None) -> str | None:
    parts = [p for p in (a, b) if p]
    return "; ".join(parts) if parts else None
