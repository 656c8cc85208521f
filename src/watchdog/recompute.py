"""Stage 2, deadlines: recomputing the deadlines of cases and persisting them (the poll's first step).

I/O: reads the case store (``watchdog.case_facts``), writes ``deadline`` (through
``watchdog.deadline_writer``, which owns the bulk writes), clears the cases' dirty marks and
records the cases that cannot be computed (``watchdog.deadline_marks``), and appends to
``outcome_event`` (through ``watchdog.outcome_log``, which owns the log and its two times).
The computing itself is in ``watchdog.rules`` (pure). The outcome log is append-only: a status
change is a new row, never an update. Deadline rows are never deleted: a duty that no longer
arises from the facts becomes ``not_applicable``.

Functions take the session and never commit: the caller owns the transaction
(``watchdog.db.session_scope``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from operator import itemgetter, ne

from sqlalchemy import select, update
from sqlmodel import Session

from watchdog import collector
from watchdog import deadline_marks as marks
from watchdog import deadline_writer as writer
from watchdog.case_facts import case_filter, load_case_facts
from watchdog.clock import ensure_aware
from watchdog.deadlines import Deadline, chunks
from watchdog.outcome_log import OutcomeWriter
from watchdog.rules.types import ComputedDeadline, Status
from watchdog.typed_rows import typed_rows

__all__ = ["RefreshStats", "poll_deadlines", "refresh_deadlines"]

BATCH_SIZE = 500
RANGE_BATCH_SIZE = 2000  # the full recompute's batches: id ranges, no IN list to bind


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


# The columns of a new row: its key, the computed ones, then computed_at, status_changed_at,
# next_alert_at and first_seen_at.
_INSERTED = ("key", *_FIELDS, "computed_at", "status_changed_at", "next_alert_at", "first_seen_at")
_LIMITED = [(_FIELDS.index(name), limit) for name, limit in _LIMITS.items()]
_STATUS = _FIELDS.index("status")
_STORED = 2 + len(_FIELDS)  # a stored row: id, key, *_FIELDS, then next_alert_at
_FINAL = frozenset(s for s in Status if s.is_final)


# Whether a row's texts (values in ``_FIELDS`` order) all fit their columns: one expression, as
# nearly every row's do, instead of a loop over the limits per row.
_fits = eval("lambda v: " + " and ".join(  # noqa: S307 - built from column indices only
    f"(v[{i}] is None or len(v[{i}]) <= {limit})" for i, limit in _LIMITED))


def _cut_to_fit(values: tuple) -> tuple:
    """A row's values in ``_FIELDS`` order with its texts cut to their columns' lengths."""
    if _fits(values):
        return values
    for index, limit in _LIMITED:
        text = values[index]
        if text is not None and len(text) > limit:
            values = (*values[:index], text[: limit - 1] + "…", *values[index + 1:])
    return values


@lru_cache(maxsize=1024)
def _changed_columns(changed: tuple[bool, ...]) -> tuple[tuple[str, ...], Callable[[tuple], tuple]]:
    """For which of ``_FIELDS`` differ (a flag each, in order): their names, and a function
    picking their values from a row's values. Compared in C and looked up once per kind of
    change: a rule change rewrites every row, and a Python loop over each row's fields was a
    tenth of it."""
    at = [i for i, flag in enumerate(changed) if flag]
    if len(at) == 1:
        only = at[0]
        return (_FIELDS[only],), lambda values: (values[only],)
    return tuple(_FIELDS[i] for i in at), itemgetter(*at)


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
        # Through the connection, not the ORM (its loading of 100,000 ids was a twentieth of the
        # recompute), after the flush the ORM's autoflush would have done: cases added and not
        # yet flushed are recomputed as before.
        if session.autoflush:
            session.flush()
        ids = [case_id for (case_id,) in typed_rows(session.connection(), select(Case.id).order_by(Case.id))]
        done = 0
        for batch in chunks(ids, RANGE_BATCH_SIZE):
            with collector.paused():
                result = _refresh_batch(session, batch, now=now, policy=policy, whole_range=True,
                                        clear_marks=clear_marks)
            batch_done(batch, result)
            done += len(batch)
            if progress is not None:
                progress(done, len(ids))
        return stats
    for batch, whole_range in _batches(sorted(set(case_ids))):
        with collector.paused():
            result = _refresh_batch(session, batch, now=now, policy=policy, whole_range=whole_range,
                                    clear_marks=clear_marks)
        batch_done(batch, result)
    return stats


def _batches(ids: list[int]) -> Iterator[tuple[Sequence[int], bool]]:
    """Sorted ``ids`` in batches, each with whether it is a whole id range: a run of consecutive
    ids (every case dirty, as after an import or at go-live) goes in range batches of
    ``RANGE_BATCH_SIZE`` (the range holds exactly those cases), the rest in IN lists of ``BATCH_SIZE``."""
    for part in chunks(ids, RANGE_BATCH_SIZE):
        if part[-1] - part[0] + 1 == len(part):
            yield part, True
        else:
            for batch in chunks(part, BATCH_SIZE):
                yield batch, False


def _refresh_batch(session: Session, case_ids: Sequence[int], *, now: datetime, policy,
                   whole_range: bool = False, clear_marks: bool = True) -> RefreshStats:
    from watchdog.rules.engine import compute_case_rows

    stats = RefreshStats()
    # The dirty marks' versions first, then the facts: a change committed in between keeps its
    # case dirty (the version moved on), instead of being cleared unseen.
    versions = marks.read_dirty_versions(session, case_ids, whole_range=whole_range) if clear_marks else {}
    facts = load_case_facts(session, case_ids, whole_range=whole_range)
    # Each deadline as its stored values (``_FIELDS`` order, cut to fit), its values as computed
    # and the rule's instance: the ComputedDeadline itself (those values and the instance) is
    # built only for the deadlines that get an event.
    computed: dict[str, tuple[tuple, tuple, object]] = {}
    for case_id in sorted(facts):
        try:
            # A list, so that a rule failing halfway leaves nothing of this case behind.
            case_rows = compute_case_rows(facts[case_id], policy, now)
        except Exception as exc:  # noqa: BLE001 - one bad record must cost only its own case
            stats.failures[case_id] = exc
            continue
        for key, values, item in case_rows:
            computed[key] = (_cut_to_fit(values), values, item)
    stats.cases_recomputed = len(facts) - len(stats.failures)
    stats.cases_failed = len(stats.failures)

    cols = [Deadline.id, Deadline.key, *(getattr(Deadline, name) for name in _FIELDS), Deadline.next_alert_at]
    # SQLite: a row whose alert plan stays as stored (a final deadline with none planned, most of a
    # rule change's rows) is rewritten without ``next_alert_at``: setting an indexed column, even
    # to its own value, rewrites its index entry (a third of the rewrite). The transaction holds
    # SQLite's one write lock from its first write and reads a snapshot no other writer changes
    # before it, so the stored plan read is the one replaced. PostgreSQL's update skips index
    # entries whose value did not change by itself (HOT), and a second staged UPDATE per batch
    # would cost more.
    keep_plan = session.get_bind().dialect.name == "sqlite"
    existing = {r.key: r for r in writer.read_stored(
        session, select(*cols).where(case_filter(Deadline.case_id, case_ids, whole_range)))}

    inserts: list[tuple] = []  # _INSERTED columns
    # Fields changed, status did not: grouped by which fields changed, so each UPDATE sets only
    # those (a case handed to another caseworker changes one column of each of its deadlines;
    # setting every column rewrote every index entry of the row). Rows: (id, *changed, now[, plan_at]),
    # keyed by the changed columns and whether ``next_alert_at`` is set.
    quiet_updates: dict[tuple[tuple[str, ...], bool], list[tuple]] = {}
    status_updates: list[tuple[object, dict]] = []

    def deadline(key: str) -> ComputedDeadline | None:
        found = computed.get(key)
        return None if found is None else ComputedDeadline(*found[1], found[2])

    def compare(values: tuple, old) -> None:
        stored = old[2:_STORED]  # same order: id, key, *_FIELDS
        if stored == values:
            return
        status = values[_STATUS]
        plan_at = None if status in _FINAL else now  # a changed deadline is planned afresh
        if old.status != status:
            status_updates.append((old, {**dict(zip(_FIELDS, values)), "computed_at": now,
                                         "status_changed_at": now, "next_alert_at": plan_at}))
        else:
            names, pick = _changed_columns(tuple(map(ne, stored, values)))
            if keep_plan and plan_at is None and old.next_alert_at is None:
                quiet_updates.setdefault((names, False), []).append((old.id, *pick(values), now))
            else:
                quiet_updates.setdefault((names, True), []).append((old.id, *pick(values), now, plan_at))

    for key, (values, _computed, _item) in computed.items():
        old = existing.get(key)
        if old is None:
            inserts.append((key, *values, now, now, None if values[_STATUS] in _FINAL else now, now))
        else:
            compare(values, old)
    for key, old in existing.items():
        if (key not in computed and old.case_id in facts and old.case_id not in stats.failures
                and old.status != Status.NOT_APPLICABLE):
            note = _VANISHED if not old.note else f"{old.note}; {_VANISHED}"[:500]
            status_updates.append((old, {"status": Status.NOT_APPLICABLE, "note": note,
                                         "computed_at": now, "status_changed_at": now, "next_alert_at": None}))

    events = OutcomeWriter(now)
    table = Deadline.__table__
    if inserts:
        # Only rows this call inserted come back: a concurrent refresh that got there first
        # records its own event, so the log has one creation event per deadline.
        inserted = {key: new_id for new_id, key in writer.insert_new(session, table, _INSERTED, inserts)}
        for row in inserts:  # the events in the order of the rows, whichever way they were written
            new_id = inserted.get(row[0])
            if new_id is not None:
                events.created(new_id, deadline(row[0]))
        stats.deadlines_written += len(inserted)
        # A key that was already there belongs to a subject moved here from another case (or a
        # concurrent refresh inserted it first): compare with that row like any existing one.
        # Looked up only on a conflict: a lookup by key of every new deadline was quadratic in
        # a first computation on PostgreSQL (a table without statistics yet is scanned).
        conflicted = [row[0] for row in inserts if row[0] not in inserted]
        for chunk in chunks(conflicted, BATCH_SIZE):
            for old in writer.read_stored(session, select(*cols).where(Deadline.key.in_(chunk))):
                compare(computed[old.key][0], old)
    for (changed, plans), rows in quiet_updates.items():
        writer.update_rows(session, table, (*changed, "computed_at", *(("next_alert_at",) if plans else ())), rows)
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
                           duty=values.get("duty", old.duty), from_status=old.status, d=deadline(old.key),
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
        ids = marks.dirty_case_ids(session, after=after, limit=RANGE_BATCH_SIZE)
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
