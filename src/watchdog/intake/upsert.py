"""Stage 1 intake: validate every record, then write all of them in one transaction, or none.

I/O: the database (reads existing rows by ``ext_id``, writes the case store). No clock: ``now``
comes in. The order is fixed:

1. validate every record against its entity's input model (collect ALL problems);
2. resolve references by ``ext_id`` — to rows already stored or to records earlier in the same
   import — and refuse duplicates and unknown references (collect ALL problems);
3. if anything was refused, raise ``ValidationFailed`` before a single row is written;
4. upsert in dependency order (teams → workers → absences → cases → notifications →
   investigations → measures → follow-ups → visits), comparing every field: identical data is
   left alone, so re-importing changes nothing;
5. mark every case whose facts changed (its row or any record under it) dirty and stamp its
   ``facts_changed_at``, in the same transaction (``watchdog.deadline_marks``), so the poll
   recomputes those and no commit can be missed.

``import_records`` wraps it for the CLI and the API: one transaction, then the deadlines of the
affected cases are recomputed (``watchdog.recompute.refresh_deadlines``).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from watchdog.casestore import Measure, ReassessmentParticipant
from watchdog.clock import ensure_aware
from watchdog.db import is_concurrency_conflict
from watchdog.deadline_marks import mark_changed
from watchdog.errors import Problem, ValidationFailed, WatchdogError
from watchdog.intake.checks import check_records
from watchdog.intake.parsing import RawRecord
from watchdog.intake.schemas import (
    ENTITIES,
    ENTITY_ORDER,
    PARTICIPANTS_FIELD,
    SENSITIVE_REASON,
    EntitySpec,
    is_sensitive_column,
)

log = logging.getLogger(__name__)

_CHUNK = 500
# Children whose facts belong to a case directly, and those that belong to it through a measure.
_CASE_CHILDREN = ("notifications", "investigations", "measures")
_MEASURE_CHILDREN = ("follow_ups", "visits")


class IntakeConflict(WatchdogError):
    """Another writer stored the same records at the same moment; nothing of this batch was kept."""


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


@dataclass
class UpsertResult:
    counts: dict[str, Counts] = field(default_factory=lambda: {n: Counts() for n in ENTITY_ORDER})
    affected_case_ids: set[int] = field(default_factory=set)
    dry_run: bool = False
    deadlines_recomputed: int | None = None  # None: not run (dry run, nothing changed, or failed)
    warnings: list = field(default_factory=list)  # intake.quality.Finding: stored, refuse nothing

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "counts": {n: vars(c) for n, c in self.counts.items() if c.total},
            "cases_affected": len(self.affected_case_ids),
            "deadlines_recomputed": self.deadlines_recomputed,
            "warnings": [w.as_dict() for w in self.warnings],
        }


@dataclass
class ValidRecord:
    """A record that passed its model: where it came from, and which fields it gave."""

    spec: EntitySpec
    source: str
    record: str
    data: Any  # the input model instance
    given: frozenset[str]  # fields present in the input (absent ones keep their stored value)

    @property
    def ext_id(self) -> str:
        return self.data.ext_id


# ------------------------------------------------------------------------------------------
# 1. Validation of single records (pure)
# ------------------------------------------------------------------------------------------

def problems_from_pydantic(errors: Iterable[dict], spec: EntitySpec | None, source: str,
                           record: str) -> list[Problem]:
    """Pydantic errors → Problems that name the field in the documented format."""
    problems = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if p != "body"]
        name = str(loc[0]) if loc else "(record)"
        field_name = name + "".join(f"[{p}]" for p in loc[1:])
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            if is_sensitive_column(name) or (name == "name" and spec is not None and name not in spec.fields):
                msg = SENSITIVE_REASON
            else:
                known = f" (known: {', '.join(spec.fields)})" if spec else ""
                msg = f"unknown field for {spec.name if spec else 'this entity'}{known}"
        elif kind == "missing":
            msg = "required"
        elif kind == "timezone_aware":
            msg = "needs a UTC offset: ISO 8601 such as 2024-03-05T14:30:00+01:00"
        elif not loc and spec is not None:
            # A model-level check ("closed_at is before opened_at") names its field first.
            first = msg.split(" ", 1)[0]
            if first in spec.fields:
                field_name = first
        problems.append(Problem(source, record, field_name, msg))
    return problems


def validate_raw(records: Sequence[RawRecord], *, progress: Callable[[int], None] | None = None
                 ) -> tuple[list[ValidRecord], list[Problem]]:
    """Every raw record through its model. Returns the valid ones and every problem found."""
    valid: list[ValidRecord] = []
    problems: list[Problem] = []
    for raw in records:
        if progress:
            progress(1)
        spec = ENTITIES.get(raw.entity)
        problems.extend(raw.problems)
        if spec is None:
            continue
        try:
            model = spec.model.model_validate(raw.values)
        except ValidationError as exc:
            # Skip errors on fields whose cell was already refused while reading it.
            already = {p.field for p in raw.problems}
            problems.extend(p for p in problems_from_pydantic(exc.errors(), spec, raw.source, raw.record)
                            if p.field not in already and not (p.reason == "required" and p.field in already))
            continue
        if raw.problems:
            continue
        valid.append(ValidRecord(spec, raw.source, raw.record, model, frozenset(model.model_fields_set)))
    return valid, problems


# ------------------------------------------------------------------------------------------
# 2.–5. Resolution and writing (database)
# ------------------------------------------------------------------------------------------

def _reading_order(problem: Problem) -> tuple:
    """Problems of a file in row order, whichever check found them."""
    number = problem.record.split(" ", 1)[0]
    return (problem.source, int(number) if number.isdigit() else -1)


def _load_by_ext_id(session: Session, table, ext_ids: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(ext_ids))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        for row in session.exec(select(table).where(table.ext_id.in_(chunk))):
            found[row.ext_id] = row
    return found


def _references(rec: ValidRecord) -> Iterable[tuple[str, str, str]]:
    """(field, target entity, ext_id) of every reference the record gives."""
    for fld, (target, _column) in rec.spec.refs.items():
        value = getattr(rec.data, fld)
        if fld in rec.given and value is not None:
            yield fld, target, value
    if rec.spec.name == "notifications" and PARTICIPANTS_FIELD in rec.given:
        for i, worker in enumerate(rec.data.reassessment_participants or ()):
            yield f"{PARTICIPANTS_FIELD}[{i}]", "workers", worker


def upsert_records(session: Session, records: Sequence[ValidRecord], *, now: datetime,
                   progress: Callable[[int], None] | None = None,
                   prior_problems: Sequence[Problem] = ()) -> UpsertResult:
    """Resolve, check and write ``records`` in ``session`` (flushes, never commits).

    Raises ValidationFailed, before writing anything, if a record is a duplicate or refers to
    something that is neither stored nor earlier in the batch, or if ``prior_problems`` (found
    by the earlier validation of other records) is not empty: so one run reports every problem.
    """
    now = ensure_aware(now, what="now")
    result = UpsertResult()
    problems: list[Problem] = list(prior_problems)

    # Duplicates inside the batch.
    batch: dict[str, dict[str, ValidRecord]] = defaultdict(dict)
    for rec in records:
        first = batch[rec.spec.name].get(rec.ext_id)
        if first is not None:
            problems.append(Problem(rec.source, rec.record, "ext_id",
                                    f"{rec.ext_id!r} appears twice in this import "
                                    f"(first in {first.source}, record {first.record})"))
            continue
        batch[rec.spec.name][rec.ext_id] = rec

    # Load what is stored: the records themselves and everything they refer to.
    wanted: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        wanted[rec.spec.name].add(rec.ext_id)
        for _fld, target, ext_id in _references(rec):
            wanted[target].add(ext_id)
    stored = {name: _load_by_ext_id(session, ENTITIES[name].table, wanted[name]) for name in ENTITY_ORDER
              if wanted[name]}
    stored = defaultdict(dict, stored)

    for rec in records:
        for fld, target, ext_id in _references(rec):
            if ext_id not in batch[target] and ext_id not in stored[target]:
                problems.append(Problem(rec.source, rec.record, fld,
                                        f"unknown {target.rstrip('s')} {ext_id!r}: neither in this import "
                                        "nor already stored"))
    if problems:
        raise ValidationFailed(sorted(problems, key=_reading_order))

    ids: dict[str, dict[str, int]] = {name: {k: row.id for k, row in rows.items()} for name, rows in stored.items()}
    ids = defaultdict(dict, ids)
    measure_case: dict[int, int] = {row.id: row.case_id for row in stored["measures"].values()}
    participants = _stored_participants(session, records, stored)

    # Every writer takes its locks in one order, so two imports of the same records (in any order
    # in their files) wait for each other instead of deadlocking: entity by entity, new rows by
    # ext_id, changed rows by id (the ORM's flush order), and stored cases' rows last, by id, in
    # one step with their dirty marks (``mark_changed``).
    case_changes: dict[int, dict[str, Any]] = {}
    for name in ENTITY_ORDER:
        spec = ENTITIES[name]
        written: list[tuple[ValidRecord, Any, bool, dict[str, Any]]] = []
        for rec in sorted(batch[name].values(), key=_by_ext_id):
            if progress:
                progress(1)
            row = stored[name].get(rec.ext_id)
            values = _column_values(rec, ids, new=row is None)
            if row is None:
                if name == "cases":
                    values["facts_changed_at"] = now
                row = spec.table(ext_id=rec.ext_id, **values)
                session.add(row)
                written.append((rec, row, True, {}))
            else:
                before = {k: getattr(row, k) for k, v in values.items() if getattr(row, k) != v}
                if name == "cases":
                    if before:  # written at the end, with the case's dirty mark
                        case_changes[row.id] = {k: values[k] for k in before}
                else:
                    for k in before:
                        setattr(row, k, values[k])
                written.append((rec, row, False, before))
        session.flush()  # new rows get their ids; later entities refer to them
        for rec, row, is_new, before in written:
            if is_new:
                ids[name][row.ext_id] = row.id
                if name == "measures":
                    measure_case[row.id] = row.case_id
            changed = bool(before)
            if name == "notifications" and PARTICIPANTS_FIELD in rec.given:
                changed = _sync_participants(session, rec, row, ids, participants) or changed
            counts = result.counts[name]
            if is_new:
                counts.created += 1
            elif changed:
                counts.updated += 1
            else:
                counts.unchanged += 1
            if is_new or changed:
                _note_affected_cases(session, result, name, row, before, measure_case)
        session.flush()

    # In this transaction: the poll sees these cases dirty exactly when it sees their facts.
    mark_changed(session, result.affected_case_ids, now=now, changes=case_changes)
    return result


def _by_ext_id(rec: ValidRecord) -> str:
    return rec.ext_id


def _column_values(rec: ValidRecord, ids: dict[str, dict[str, int]], *, new: bool) -> dict[str, Any]:
    """The table columns the record sets: all of them for a new row, the given ones otherwise."""
    data = rec.data
    names = rec.spec.fields if new else [f for f in rec.spec.fields if f in rec.given]
    values: dict[str, Any] = {}
    for name in names:
        if name in ("ext_id", PARTICIPANTS_FIELD):
            continue
        value = getattr(data, name)
        if name in rec.spec.refs:
            target, column = rec.spec.refs[name]
            values[column] = None if value is None else ids[target][value]
        else:
            values[name] = value
    return values


def _note_affected_cases(session: Session, result: UpsertResult, name: str, row,
                         before: dict[str, Any], measure_case: dict[int, int]) -> None:
    """The cases whose facts a changed row belongs to (before and after a move)."""
    if name == "cases":
        result.affected_case_ids.add(row.id)
    elif name in _CASE_CHILDREN:
        result.affected_case_ids.add(row.case_id)
        if before.get("case_id") is not None:
            result.affected_case_ids.add(before["case_id"])
    elif name in _MEASURE_CHILDREN:
        for measure_id in (row.measure_id, before.get("measure_id")):
            if measure_id is None:
                continue
            if measure_id not in measure_case:
                measure_case[measure_id] = session.get(Measure, measure_id).case_id
            result.affected_case_ids.add(measure_case[measure_id])


def _stored_participants(session: Session, records: Sequence[ValidRecord],
                         stored: dict[str, dict[str, Any]]) -> dict[int, set[int]]:
    """The stored participants of every stored notification whose participants the batch gives."""
    notification_ids = [stored["notifications"][r.ext_id].id for r in records
                        if r.spec.name == "notifications" and PARTICIPANTS_FIELD in r.given
                        and r.ext_id in stored["notifications"]]
    found: dict[int, set[int]] = defaultdict(set)
    for start in range(0, len(notification_ids), _CHUNK):
        chunk = notification_ids[start:start + _CHUNK]
        query = select(ReassessmentParticipant).where(ReassessmentParticipant.notification_id.in_(chunk))
        for p in session.exec(query):
            found[p.notification_id].add(p.worker_id)
    return found


def _sync_participants(session: Session, rec: ValidRecord, row, ids, participants) -> bool:
    """Make the stored participants equal the given list. True if anything changed."""
    wanted = {ids["workers"][w] for w in (rec.data.reassessment_participants or ())}
    have = participants.get(row.id, set())
    if wanted == have:
        return False
    gone = have - wanted
    if gone:
        for p in session.exec(select(ReassessmentParticipant).where(
                ReassessmentParticipant.notification_id == row.id,
                ReassessmentParticipant.worker_id.in_(sorted(gone)))):
            session.delete(p)
    for worker_id in sorted(wanted - have):
        session.add(ReassessmentParticipant(notification_id=row.id, worker_id=worker_id))
    participants[row.id] = wanted
    return True


# ------------------------------------------------------------------------------------------
# The whole import: one transaction, then the deadlines of the affected cases
# ------------------------------------------------------------------------------------------

#: How often an import is run again after losing a race with a concurrent writer (a deadlock, a
#: serialization failure, the same new records stored first) before it is refused with 409.
CONFLICT_ATTEMPTS = 5


def import_valid(engine: Engine, records: Sequence[ValidRecord], *, now: datetime, settings,
                 dry_run: bool = False, progress: Callable[[int], None] | None = None,
                 prior_problems: Sequence[Problem] = (), sleep: Callable[[float], None] = time.sleep
                 ) -> UpsertResult:
    """Write ``records`` in one transaction (or roll back for a dry run), then recompute deadlines.

    A transaction that loses a race with a concurrent writer is rolled back and run again from
    the start (it then sees what the other stored), at most ``CONFLICT_ATTEMPTS`` times; after
    that ``IntakeConflict`` (HTTP 409). Nothing of a failed attempt is kept.
    """
    prior_problems = [*prior_problems, *check_records(records, settings=settings, now=now)]
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        with Session(engine, expire_on_commit=False) as session:
            try:
                result = upsert_records(session, records, now=now, progress=progress if attempt == 1 else None,
                                        prior_problems=prior_problems)
                from watchdog.intake.quality import check_imported

                result.warnings = check_imported(session, records, now=now)
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
                break
            except (DBAPIError, IntegrityError) as exc:
                session.rollback()
                if not (is_concurrency_conflict(exc) or isinstance(exc, IntegrityError)):
                    raise
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
                if attempt == CONFLICT_ATTEMPTS:
                    raise IntakeConflict(
                        "concurrent writers kept storing the same records at the same moment; nothing "
                        f"of this batch was stored, send it again ({reason})") from None
                log.warning("import lost a race with a concurrent writer (attempt %d of %d): %s; "
                            "running it again", attempt, CONFLICT_ATTEMPTS, reason)
                sleep(min(0.05 * 2 ** attempt, 2.0) * (1 + random.random()))
            except BaseException:
                session.rollback()
                raise
    result.dry_run = dry_run
    if not dry_run and result.affected_case_ids:
        result.deadlines_recomputed = recompute_deadlines(engine, result.affected_case_ids, now=now,
                                                          settings=settings)
    return result


def import_records(engine: Engine, raw: Sequence[RawRecord], *, now: datetime, settings,
                   dry_run: bool = False, progress: Callable[[int], None] | None = None,
                   file_problems: Sequence[Problem] = ()) -> UpsertResult:
    """Validate every raw record, then ``import_valid``. Nothing is stored if anything is refused.

    ``file_problems`` are problems already found with whole files (``parsing.read_files``): they
    refuse the import too, but the other records are still checked so that every problem is named.
    """
    valid, problems = validate_raw(raw, progress=progress)
    return import_valid(engine, valid, now=now, settings=settings, dry_run=dry_run, progress=progress,
                        prior_problems=[*file_problems, *problems])


def recompute_deadlines(engine: Engine, case_ids: set[int], *, now: datetime, settings) -> int | None:
    """Recompute the deadlines of the given cases in their own transaction.

    Separate from the import's transaction on purpose: the imported facts are already safe, and
    if this fails (or the process dies) the next poll recomputes the same cases: their dirty marks
    stay until a recompute clears them.
    """
    try:
        from watchdog.recompute import refresh_deadlines
    except ImportError:  # the rules stage has not landed in this build: the poll will do it
        log.warning("deadline refresh unavailable; %d cases wait for the next poll", len(case_ids))
        return None
    try:
        with Session(engine, expire_on_commit=False) as session:
            stats = refresh_deadlines(session, now=now, settings=settings, case_ids=sorted(case_ids))
            session.commit()
        return stats.deadlines_written
    except Exception:
        log.exception("recomputing the deadlines of %d imported cases failed; the next poll retries",
                      len(case_ids))
        return None
