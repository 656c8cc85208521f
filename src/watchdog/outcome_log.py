"""The outcome log: every status change of a deadline and every alert sent, with two times.

- ``occurred_at``: when it happened in the case — a deadline met at its completion (``met_at``),
  breached at its due instant, excepted when the lawful reason took effect (the interim assessment,
  and not before the due time, since until then the duty could still be met), not applicable at
  the closing or the end of the measure, open from its clock start. An alert: when it was sent.
- ``recorded_at``: when the service learned it (the recompute's or the delivery's ``now``).

A first computation (an import, a backfill, a case seen for the first time) writes the deadline's
whole history with the occurred times (``rules.status.history``), so a year imported today reports
at once. The log stays append-only. A later change that rewrites the past (corrected facts) is
recorded as events from the first instant where the old and the new history differ, and a reader
replays the log in recorded order, each event replacing what was known from its occurred time on
(``replay``). So:

- *as of occurred time T* (the reports' default): the status that, by all the service knows now,
  the deadline had at T;
- *as known at K* (``--as-known-at``): only events recorded by K, i.e. what a report printed at K
  said.

I/O: ``OutcomeWriter.flush``, ``record_alert_sent`` and ``load_statuses`` read or write the
``outcome_event`` table; ``replay``, ``status_at`` and ``events_to_write`` are pure.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Field, Session, SQLModel

from watchdog.clock import ensure_aware
from watchdog.rules.types import ComputedDeadline, Duty, Status

Timeline = list[tuple[datetime, Status]]  # (occurred at, status from then on), by occurred time


class OutcomeKind:
    STATUS = "status"  # a deadline's status changed (first computation included: from_status None)
    ALERT_SENT = "alert_sent"  # an alert about the deadline was delivered


class OutcomeEvent(SQLModel, table=True):
    """Append-only log: every status change of a deadline and every alert sent, with two times."""

    __tablename__ = "outcome_event"
    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(index=True)  # when it happened in the case (the barometer: events after as-of)
    recorded_at: datetime = Field(index=True)  # when the service learned it
    kind: str = Field(max_length=20, index=True)
    deadline_id: int = Field(foreign_key="deadline.id", index=True)
    deadline_key: str = Field(max_length=200)
    case_id: int = Field(index=True)
    duty: Duty = Field(index=True)
    from_status: Status | None = None
    to_status: Status | None = None
    detail: str | None = Field(default=None, max_length=2000)


# --------------------------------------------------------------------------------------------
# Reading the log (pure)

def replay(events: Iterable[tuple[datetime, Status]]) -> Timeline:
    """A deadline's timeline from its status events, given in recorded order ((recorded_at, id)).

    Each event says "from ``occurred_at`` on, the status is ``to_status``" and replaces whatever
    was known from that instant on: a correction recorded later overrides the past it rewrites."""
    timeline: Timeline = []
    for occurred, status in events:
        while timeline and timeline[-1][0] >= occurred:
            timeline.pop()
        if not timeline or timeline[-1][1] != status:  # a repeat changes nothing
            timeline.append((occurred, status))
    return timeline


def status_at(timeline: Sequence[tuple[datetime, Status]], instant: datetime) -> Status | None:
    """The status at ``instant`` (None: the deadline had no status yet)."""
    index = bisect_right([t for t, _ in timeline], instant)
    return timeline[index - 1][1] if index else None


def events_to_write(old: Sequence[tuple[datetime, Status]],
                    new: Sequence[tuple[datetime, Status]]) -> Timeline:
    """The points to append so that replaying ``old`` and then them gives ``new``.

    Forward progress (the usual case: a breach at the due time, a completion) appends only the new
    points. Where the two differ in the past, the points from the first instant of difference on."""
    i = 0
    while i < len(old) and i < len(new) and old[i] == new[i]:
        i += 1
    if i == len(old):
        return list(new[i:])
    t0 = old[i][0] if i == len(new) else min(old[i][0], new[i][0])
    first = status_at(new, t0) or new[0][1]
    return [(t0, first), *(p for p in new if p[0] > t0)]


# --------------------------------------------------------------------------------------------
# Writing (I/O at flush)

def _detail(d: ComputedDeadline) -> str | None:
    parts = [f"{d.regime.value} {d.citation}"]
    if d.exception_reason:
        parts.append(f"lawful reason: {d.exception_reason}")
    if d.note:
        parts.append(d.note)
    return "; ".join(parts)[:2000]


@dataclass
class _Change:
    deadline_id: int
    key: str
    case_id: int
    duty: Duty
    from_status: Status | None
    timeline: Timeline
    detail: str | None


class OutcomeWriter:
    """Collects the status events of one recompute batch and writes them at ``flush``.

    ``created``: a deadline computed for the first time: its whole history. ``changed``: a stored
    deadline whose status changed: the points that differ from what the log knows (read at flush,
    one query per batch). ``now`` is every event's recorded time."""

    def __init__(self, now: datetime):
        self.now = ensure_aware(now, what="now")
        self._created: list[_Change] = []
        self._changed: list[_Change] = []

    def created(self, deadline_id: int, d: ComputedDeadline) -> None:
        self._created.append(_Change(deadline_id, d.key, d.case_id, d.duty, None, self._history(d), _detail(d)))

    def changed(self, deadline_id: int, key: str, *, case_id: int, duty, from_status, d: ComputedDeadline | None,
                clock_start: datetime, note: str | None) -> None:
        """``d`` None: the duty no longer arises from the facts; as now known it never applied,
        so it is not applicable from its clock start."""
        timeline = self._history(d) if d is not None else [(clock_start, Status.NOT_APPLICABLE)]
        self._changed.append(_Change(deadline_id, key, case_id, Duty(duty), Status(from_status), timeline,
                                     _detail(d) if d is not None else note))

    def _history(self, d: ComputedDeadline) -> Timeline:
        from watchdog.rules.status import history

        if d.origin is None:  # built by hand (tests): only the current status is known
            return [(self.now, d.status)]
        return list(history(d.origin, self.now))

    def flush(self, session: Session) -> int:
        """Insert the collected events; returns how many. Does not commit."""
        from watchdog import deadline_writer

        rows: list[tuple] = []
        for c in self._created:
            self._rows(rows, c, c.timeline, None)
        if self._changed:
            known = load_timelines(session, [c.deadline_id for c in self._changed])
            for c in self._changed:
                points = events_to_write(known.get(c.deadline_id, []), c.timeline)
                if not points:  # the log already says so; still record that the status changed
                    points = [c.timeline[-1]]
                self._rows(rows, c, points, c.from_status)
        deadline_writer.insert_rows(session, OutcomeEvent.__table__, _EVENT_COLUMNS, rows)
        self._created, self._changed = [], []
        return len(rows)

    def _rows(self, out: list[tuple], c: _Change, points: Iterable[tuple[datetime, Status]],
              before: Status | None) -> None:
        """Append the rows of ``c``'s ``points`` to ``out`` (``_EVENT_COLUMNS``)."""
        now, key, case_id, duty, detail, deadline_id = self.now, c.key, c.case_id, c.duty, c.detail, c.deadline_id
        for occurred, status in points:
            # Enums are stored by name (SQLAlchemy's Enum type), as the ORM would.
            out.append((occurred, now, OutcomeKind.STATUS, deadline_id, key, case_id, duty, before, status, detail))
            before = status


# The columns of a status event row, in the order ``OutcomeWriter._rows`` gives them.
_EVENT_COLUMNS = ("occurred_at", "recorded_at", "kind", "deadline_id", "deadline_key", "case_id", "duty",
                  "from_status", "to_status", "detail")


def record_alert_sent(session: Session, *, deadline_id: int, at: datetime, detail: str | None) -> None:
    """Append ``OutcomeEvent(kind="alert_sent")`` for a delivered alert (both times: ``at``)."""
    from watchdog.deadlines import Deadline

    at = ensure_aware(at, what="at")
    row = session.execute(select(Deadline.key, Deadline.case_id, Deadline.duty)
                          .where(Deadline.id == deadline_id)).one_or_none()
    if row is None:
        raise LookupError(f"deadline {deadline_id} does not exist")
    session.execute(OutcomeEvent.__table__.insert(), [{
        "occurred_at": at, "recorded_at": at, "kind": OutcomeKind.ALERT_SENT, "deadline_id": deadline_id,
        "deadline_key": row.key, "case_id": row.case_id, "duty": row.duty, "from_status": None,
        "to_status": None, "detail": (detail or None) and detail[:2000],
    }])


def record_alerts_sent(session: Session, sent: Sequence[tuple[int, str | None]], *, at: datetime,
                       known: Mapping[int, Any] | None = None) -> int:
    """``record_alert_sent`` for many alerts at once: ``sent`` holds (deadline id, detail) pairs;
    one SELECT of their deadlines (those not in ``known``: rows with ``key``, ``case_id`` and
    ``duty`` the caller has read already) and one INSERT. Returns the number of events written."""
    from watchdog.deadlines import Deadline

    if not sent:
        return 0
    at = ensure_aware(at, what="at")
    known = dict(known or {})
    ids = sorted({deadline_id for deadline_id, _detail in sent if deadline_id not in known})
    for start in range(0, len(ids), _CHUNK):
        known.update((r.id, r) for r in session.execute(
            select(Deadline.id, Deadline.key, Deadline.case_id, Deadline.duty)
            .where(Deadline.id.in_(ids[start:start + _CHUNK]))))
    missing = [deadline_id for deadline_id, _detail in sent if deadline_id not in known]
    if missing:
        raise LookupError(f"deadline {missing[0]} does not exist")
    session.execute(OutcomeEvent.__table__.insert(), [{
        "occurred_at": at, "recorded_at": at, "kind": OutcomeKind.ALERT_SENT, "deadline_id": deadline_id,
        "deadline_key": known[deadline_id].key, "case_id": known[deadline_id].case_id,
        "duty": known[deadline_id].duty, "from_status": None, "to_status": None,
        "detail": (detail or None) and detail[:2000],
    } for deadline_id, detail in sent])
    return len(sent)


# --------------------------------------------------------------------------------------------
# Loading timelines (I/O): the one reading of the log that reports, digest and pages share

_CHUNK = 500


def load_timelines(session: Session, deadline_ids, *, known_at: datetime | None = None) -> dict[int, Timeline]:
    """Each deadline's timeline as known at ``known_at`` (None: as known now).

    ``deadline_ids``: a list of ids, or a select of ids (one query, no IN list to bind)."""
    out: dict[int, list] = defaultdict(list)

    def run(where) -> None:
        # The kind is checked here, not in SQL: with it in the WHERE clause SQLite (no statistics)
        # read every status event of the log through ix_outcome_event_kind and sorted them, 80 ms
        # per batch of a poll at national scale, instead of the few events of these deadlines.
        query = (select(OutcomeEvent.deadline_id, OutcomeEvent.occurred_at, OutcomeEvent.to_status, OutcomeEvent.kind)
                 .where(where)
                 .order_by(OutcomeEvent.deadline_id, OutcomeEvent.recorded_at, OutcomeEvent.id))
        if known_at is not None:
            query = query.where(OutcomeEvent.recorded_at <= ensure_aware(known_at, what="known_at"))
        for deadline_id, occurred, status, kind in session.execute(query):
            if status is not None and kind == OutcomeKind.STATUS:
                out[deadline_id].append((ensure_aware(occurred), Status(status)))

    if isinstance(deadline_ids, (list, tuple, set, frozenset)):
        ids = sorted(deadline_ids)
        for start in range(0, len(ids), _CHUNK):
            run(OutcomeEvent.deadline_id.in_(ids[start:start + _CHUNK]))
    else:
        run(OutcomeEvent.deadline_id.in_(deadline_ids))
    return {deadline_id: replay(events) for deadline_id, events in out.items()}


def first_recorded(session: Session, deadline_ids: Sequence[int]) -> dict[int, datetime]:
    """When the service first recorded anything about each deadline (for notes on missing status)."""
    from sqlalchemy import func

    out: dict[int, datetime] = {}
    ids = sorted(deadline_ids)
    for start in range(0, len(ids), _CHUNK):
        for deadline_id, first in session.execute(
                select(OutcomeEvent.deadline_id, func.min(OutcomeEvent.recorded_at))
                .where(OutcomeEvent.kind == OutcomeKind.STATUS,
                       OutcomeEvent.deadline_id.in_(ids[start:start + _CHUNK]))
                .group_by(OutcomeEvent.deadline_id)):
            out[deadline_id] = ensure_aware(first)
    return out
