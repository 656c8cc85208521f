"""Stage 2, deadlines: one persisted row per legal duty instance, and the outcome log.

I/O: reads the case store, writes ``deadline``, clears the cases' dirty marks and records the
cases that cannot be computed (``watchdog.deadline_marks``), and appends to ``outcome_event``
(through ``watchdog.outcome_log``, which owns the log and its two times).
The computing itself is in ``watchdog.rules`` (pure); this module loads the
facts in bulk, persists the results and records every status change. The outcome log is
append-only: a status change is a new row, never an update. Deadline rows are never deleted (the
log and the outbox reference them): a duty that no longer arises from the facts becomes
``not_applicable``.

Functions take the session and never commit: the caller owns the transaction
(``watchdog.db.session_scope``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

from sqlalchemy import Index, bindparam, select, update
from sqlmodel import Field, Session, SQLModel

from watchdog import deadline_marks as marks
from watchdog.clock import ensure_aware
from watchdog.db import dialect_insert
from watchdog.outcome_log import OutcomeEvent, OutcomeKind, OutcomeWriter, record_alert_sent
from watchdog.rules.types import ComputedDeadline, Duty, Regime, Status, SubjectKind

__all__ = ["Deadline", "OutcomeEvent", "OutcomeKind", "PollState", "record_alert_sent", "refresh_deadlines",
           "poll_deadlines", "list_deadlines", "load_case_facts"]


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


# --------------------------------------------------------------------------------------------
# Loading facts in bulk (a few IN queries per batch of cases, never one query per case)

BATCH_SIZE = 500
RANGE_BATCH_SIZE = 2000  # the full recompute's batches: id ranges, no IN list to bind


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """``items`` in slices of at most ``size`` (IN lists stay within the drivers' parameter limits)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _case_filter(column, case_ids: Sequence[int], whole_range: bool):
    """``column`` among ``case_ids``: an id range when the batch is every case in it (the full
    recompute; one cached statement, an index range scan), else an IN list."""
    if whole_range:
        return column.between(case_ids[0], case_ids[-1])
    return column.in_(case_ids)


def load_case_facts(session: Session, case_ids: Sequence[int], *, whole_range: bool = False):
    """The facts of the given cases, keyed by case id (cases that do not exist are left out).

    ``whole_range``: ``case_ids`` is sorted and the caller wants every case from its first to its
    last id (cases created meanwhile in that range are included).

    Reads through the session's connection (Core rows), not the ORM: for plain column selects
    the ORM's result machinery was a fifth of a national recompute."""
    from watchdog.casestore import (
        Case, FollowUp, Investigation, Measure, Notification, ReassessmentParticipant, SupervisionVisit,
    )
    from watchdog.rules.facts import (
        CaseFacts, FollowUpFacts, InvestigationFacts, MeasureFacts, NotificationFacts, VisitFacts,
    )

    ids = list(case_ids)
    if not ids:
        return {}

    def among(column):
        return _case_filter(column, ids, whole_range)
    # Rows are unpacked as tuples and the facts built positionally (in their fields' order):
    # attribute access on rows and keyword construction were a tenth of a national recompute.
    conn = session.connection()
    participants: dict[int, set[int]] = {}
    for notification_id, worker_id in conn.execute(
        select(ReassessmentParticipant.notification_id, ReassessmentParticipant.worker_id)
        .join(Notification, Notification.id == ReassessmentParticipant.notification_id)
        .where(among(Notification.case_id))
    ):
        participants.setdefault(notification_id, set()).add(worker_id)
    no_one: frozenset[int] = frozenset()

    notifications: dict[int, list] = {}
    for (case_id, id_, received_at, professional_notifier, assessed_at, assessed_by_id, receipt_confirmed_at,
         child_in_support, reassessed_at) in conn.execute(select(
            Notification.case_id, Notification.id, Notification.received_at, Notification.professional_notifier,
            Notification.assessed_at, Notification.assessed_by_id, Notification.receipt_confirmed_at,
            Notification.child_in_support, Notification.reassessed_at,
         ).where(among(Notification.case_id))):
        found = participants.get(id_)
        notifications.setdefault(case_id, []).append(NotificationFacts(
            id_, received_at, bool(professional_notifier), assessed_at, assessed_by_id, receipt_confirmed_at,
            bool(child_in_support), reassessed_at, frozenset(found) if found else no_one,
        ))

    investigations: dict[int, list] = {}
    for case_id, *fields in conn.execute(select(
        Investigation.case_id, Investigation.id, Investigation.aware_at, Investigation.kind,
        Investigation.completed_at, Investigation.interim_assessed_at, Investigation.notification_id,
    ).where(among(Investigation.case_id))):
        investigations.setdefault(case_id, []).append(InvestigationFacts(*fields))

    follow_ups: dict[int, list] = {}
    for measure_id, *fields in conn.execute(
        select(FollowUp.measure_id, FollowUp.id, FollowUp.performed_at, FollowUp.next_planned_on)
        .join(Measure, Measure.id == FollowUp.measure_id).where(among(Measure.case_id))
    ):
        follow_ups.setdefault(measure_id, []).append(FollowUpFacts(*fields))

    visits: dict[int, list] = {}
    for measure_id, id_, visited_at, child_conversation in conn.execute(
        select(SupervisionVisit.measure_id, SupervisionVisit.id, SupervisionVisit.visited_at,
               SupervisionVisit.child_conversation)
        .join(Measure, Measure.id == SupervisionVisit.measure_id).where(among(Measure.case_id))
    ):
        visits.setdefault(measure_id, []).append(VisitFacts(id_, visited_at, bool(child_conversation)))

    measures: dict[int, list] = {}
    for (case_id, id_, kind, decided_at, legal_basis, effected_at, ended_at, investigation_id,
         child_conversation_at, child_conversation_exemption, plan_at, plan_required) in conn.execute(select(
            Measure.case_id, Measure.id, Measure.kind, Measure.decided_at, Measure.legal_basis,
            Measure.effected_at, Measure.ended_at, Measure.investigation_id, Measure.child_conversation_at,
            Measure.child_conversation_exemption, Measure.plan_at, Measure.plan_required,
         ).where(among(Measure.case_id))):
        measures.setdefault(case_id, []).append(MeasureFacts(
            id_, kind, decided_at, legal_basis or "", effected_at, ended_at, investigation_id,
            child_conversation_at, child_conversation_exemption, plan_at, bool(plan_required),
            tuple(follow_ups.get(id_, ())), tuple(visits.get(id_, ())),
        ))

    facts = {}
    by_receipt = attrgetter("received_at", "id")
    for id_, opened_at, worker_id, birth_date, closed_at, aftercare_decided_at in conn.execute(select(
        Case.id, Case.opened_at, Case.worker_id, Case.birth_date, Case.closed_at, Case.aftercare_decided_at,
    ).where(among(Case.id))):
        facts[id_] = CaseFacts(
            id_, opened_at, worker_id, birth_date, closed_at, aftercare_decided_at,
            tuple(sorted(notifications.get(id_, ()), key=by_receipt)),
            tuple(investigations.get(id_, ())),
            tuple(measures.get(id_, ())),
        )
    return facts


# --------------------------------------------------------------------------------------------
# Recomputing and persisting

@dataclass
class RefreshStats:
    cases_recomputed: int = 0
    deadlines_written: int = 0  # rows inserted or updated
    status_changes: int = 0  # outcome events appended
    cases_failed: int = 0  # cases whose rules raised (left as they were, tried again later)
    # The failed cases of this batch and their exceptions (recorded by ``refresh_deadlines``).
    failures: dict[int, BaseException] = field(default_factory=dict, repr=False)

    def add(self, other: RefreshStats) -> None:
        self.cases_recomputed += other.cases_recomputed
        self.deadlines_written += other.deadlines_written
        self.status_changes += other.status_changes
        self.cases_failed += other.cases_failed


# The columns a recomputation may change, in ComputedDeadline's names.
_FIELDS = ("duty", "case_id", "subject_kind", "subject_id", "seq", "regime", "citation", "clock_start",
           "due", "status", "met_at", "exception_reason", "responsible_worker_id", "municipal_policy", "note")
_LIMITS = {"citation": 100, "exception_reason": 500, "note": 500}
_VANISHED = "no longer required by the case facts"


_values = attrgetter(*_FIELDS)
_LIMITED = [(_FIELDS.index(name), limit) for name, limit in _LIMITS.items()]


def _row_values(d: ComputedDeadline) -> tuple:
    """The stored values of a computed deadline, in ``_FIELDS`` order (texts cut to fit)."""
    values = _values(d)
    for index, limit in _LIMITED:
        text = values[index]
        if text is not None and len(text) > limit:
            values = (*values[:index], text[: limit - 1] + "…", *values[index + 1:])
    return values


def refresh_deadlines(session: Session, *, now: datetime, settings, case_ids: Iterable[int] | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      clear_marks: bool = True) -> RefreshStats:
    """Recompute the deadlines of the given cases (None = every case) as of ``now``.

    Upserts one row per duty instance by ``key``, writes only rows that changed, and appends
    ``OutcomeEvent(kind="status")`` rows for every status change: a first computation writes the
    deadline's history with the instants it happened (``from_status`` None on the first), a later
    change what differs from the log (``watchdog.outcome_log``). A row whose duty no longer arises becomes ``not_applicable``.
    A case whose rules raise is left as it was and recorded (``deadline_marks``): one bad record
    costs its own case, never the batch. ``clear_marks``: clear the dirty marks of the cases
    recomputed (unless they changed meanwhile).
    ``progress(cases done, cases in all)`` is called after each batch of the full recompute.
    Does not commit.
    """
    from watchdog.casestore import Case
    from watchdog.rules.policy import RulePolicy

    now = ensure_aware(now, what="now")
    policy = RulePolicy.from_settings(settings)
    stats = RefreshStats()
    known_failures = marks.any_failures(session)

    def batch_done(batch: Sequence[int], result: RefreshStats) -> None:
        stats.add(result)
        if result.failures:
            marks.record_failures(session, result.failures, now=now)
        if known_failures:
            marks.forget_failures(session, [c for c in batch if c not in result.failures])

    if case_ids is None:
        # Every case, in id ranges: each batch reads its rows with range scans (cheaper than
        # long IN lists, and one cached statement per table).
        ids = list(session.execute(select(Case.id).order_by(Case.id)).scalars())
        done = 0
        for batch in chunks(ids, RANGE_BATCH_SIZE):
            batch_done(batch, _refresh_batch(session, batch, now=now, policy=policy, whole_range=True,
                                             clear_marks=clear_marks))
            done += len(batch)
            if progress is not None:
                progress(done, len(ids))
        return stats
    ids = sorted(set(case_ids))
    for batch in chunks(ids, BATCH_SIZE):
        batch_done(batch, _refresh_batch(session, batch, now=now, policy=policy, clear_marks=clear_marks))
    return stats


def _refresh_batch(session: Session, case_ids: Sequence[int], *, now: datetime, policy,
                   whole_range: bool = False, clear_marks: bool = True) -> RefreshStats:
    from watchdog.rules.engine import compute_case_deadlines

    stats = RefreshStats()
    # The dirty marks' versions first, then the facts: a change committed in between keeps its
    # case dirty (the version moved on), instead of being cleared unseen.
    versions = marks.read_dirty_versions(session, case_ids, whole_range=whole_range) if clear_marks else {}
    facts = load_case_facts(session, case_ids, whole_range=whole_range)
    computed: dict[str, ComputedDeadline] = {}
    for case_id in sorted(facts):
        try:
            # A list, so that a rule failing halfway leaves nothing of this case behind.
            case_deadlines = list(compute_case_deadlines(facts[case_id], policy, now))
        except Exception as exc:  # noqa: BLE001 - one bad record must cost only its own case
            stats.failures[case_id] = exc
            continue
        for d in case_deadlines:
            computed[d.key] = d
    stats.cases_recomputed = len(facts) - len(stats.failures)
    stats.cases_failed = len(stats.failures)

    cols = [Deadline.id, Deadline.key, *(getattr(Deadline, name) for name in _FIELDS)]
    existing = {r.key: r for r in session.connection().execute(
        select(*cols).where(_case_filter(Deadline.case_id, case_ids, whole_range)))}

    inserts: list[dict] = []
    # Fields changed, status did not: grouped by which fields changed, so each UPDATE sets only
    # those (a case handed to another caseworker changes one column of each of its deadlines;
    # setting every column rewrote every index entry of the row).
    quiet_updates: dict[tuple[str, ...], list[dict]] = {}
    status_updates: list[tuple[object, dict]] = []

    def compare(d: ComputedDeadline, values: tuple, old) -> None:
        stored = old[2:]  # same order: id, key, *_FIELDS
        if stored == values:
            return
        plan_at = None if d.status.is_final else now  # a changed deadline is planned afresh
        if old.status != d.status:
            status_updates.append((old, {**dict(zip(_FIELDS, values)), "computed_at": now,
                                         "status_changed_at": now, "next_alert_at": plan_at}))
        else:
            changed = {name: b for name, a, b in zip(_FIELDS, stored, values) if a != b}
            quiet_updates.setdefault(tuple(changed), []).append(
                {"b_id": old.id, **changed, "computed_at": now, "next_alert_at": plan_at})

    for key, d in computed.items():
        values = _row_values(d)
        old = existing.get(key)
        if old is None:
            inserts.append({"key": key, **dict(zip(_FIELDS, values)), "computed_at": now, "status_changed_at": now,
                            "next_alert_at": None if d.status.is_final else now, "first_seen_at": now})
        else:
            compare(d, values, old)
    for key, old in existing.items():
        if (key not in computed and old.case_id in facts and old.case_id not in stats.failures
                and old.status != Status.NOT_APPLICABLE):
            note = _VANISHED if not old.note else f"{old.note}; {_VANISHED}"[:500]
            status_updates.append((old, {"status": Status.NOT_APPLICABLE, "note": note,
                                         "computed_at": now, "status_changed_at": now, "next_alert_at": None}))

    events = OutcomeWriter(now)
    if inserts:
        table = Deadline.__table__
        # executemany on a Core insert: compiled once and cached, sent in batches
        # ("insertmanyvalues"); a multi-VALUES statement would be compiled afresh every batch.
        stmt = (dialect_insert(session)(table).on_conflict_do_nothing(index_elements=["key"])
                .returning(table.c.id, table.c.key))
        inserted: set[str] = set()
        for start in range(0, len(inserts), BATCH_SIZE):
            chunk = inserts[start:start + BATCH_SIZE]
            # Only rows this call inserted come back: a concurrent refresh that got there first
            # records its own event, so the log has one creation event per deadline.
            for new_id, key in session.execute(stmt, chunk).all():
                inserted.add(key)
                events.created(new_id, computed[key])
                stats.deadlines_written += 1
        # A key that was already there belongs to a subject moved here from another case (or a
        # concurrent refresh inserted it first): compare with that row like any existing one.
        # Looked up only on a conflict: a lookup by key of every new deadline was quadratic in
        # a first computation on PostgreSQL (a table without statistics yet is scanned).
        conflicted = [row["key"] for row in inserts if row["key"] not in inserted]
        for chunk in chunks(conflicted, BATCH_SIZE):
            for old in session.connection().execute(select(*cols).where(Deadline.key.in_(chunk))):
                d = computed[old.key]
                compare(d, _row_values(d), old)
    table = Deadline.__table__
    for changed, rows in quiet_updates.items():
        columns = (*changed, "computed_at", "next_alert_at")
        session.execute(update(table).where(table.c.id == bindparam("b_id"))
                        .values({name: bindparam(name) for name in columns}), rows)
        stats.deadlines_written += len(rows)
    for old, values in status_updates:
        # Conditional on the status we read: of two replicas recomputing the same case, only
        # one changes the row and appends the event.
        result = session.execute(
            update(Deadline).where(Deadline.id == old.id, Deadline.status == old.status).values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            stats.deadlines_written += 1
            events.changed(old.id, old.key, case_id=values.get("case_id", old.case_id),
                           duty=values.get("duty", old.duty), from_status=old.status, d=computed.get(old.key),
                           clock_start=old.clock_start, note=values.get("note"))
    stats.status_changes += events.flush(session)
    marks.clear(session, {c: v for c, v in versions.items() if c not in stats.failures})
    return stats


def poll_deadlines(session: Session, *, now: datetime, settings) -> RefreshStats:
    """Incremental refresh: the cases marked dirty (their facts changed and no recompute has
    handled the change yet), plus the cases with an open deadline whose due time has passed.

    Idempotent: polling twice with nothing changed writes nothing. A case whose rules raise stays
    dirty and is tried again by the next poll. Does not commit.
    """
    now = ensure_aware(now, what="now")
    stats = RefreshStats()
    done: set[int] = set()
    after = 0
    while True:
        ids = marks.dirty_case_ids(session, after=after, limit=BATCH_SIZE)
        if not ids:
            break
        stats.add(refresh_deadlines(session, now=now, settings=settings, case_ids=ids))
        done.update(ids)
        after = ids[-1]
    passed = [cid for cid in session.execute(
        select(Deadline.case_id).where(Deadline.status == Status.OPEN, Deadline.due <= now).distinct()
    ).scalars() if cid not in done]
    if passed:
        # Not dirty when the loop above ran: their marks (if a change landed since) are left to
        # the next poll, which clears them in id order like every other writer of case rows.
        stats.add(refresh_deadlines(session, now=now, settings=settings, case_ids=passed, clear_marks=False))
    return stats


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
