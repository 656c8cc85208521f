"""Stage 1 intake: validate and write the records of an import in one transaction, or none.

I/O: the database (reads existing rows by ``ext_id``, writes the case store). No clock: ``now``
comes in. The records stream through in dependency order (teams → workers → absences → cases →
notifications → investigations → measures → follow-ups → visits), ``CHUNK`` at a time, so memory
is bounded by the chunk, not the import:

1. validate every record against its entity's input model (collect ALL problems);
2. the configured checks, duplicates, and references by ``ext_id`` — to rows already stored or to
   records earlier in the same import (collect ALL problems);
3. while nothing was refused, write the chunk with Core statements (``watchdog.intake.writing``):
   identical data is left alone, so re-importing changes nothing;
4. if anything was refused, raise ``ValidationFailed`` naming every problem: the transaction is
   rolled back, nothing is stored;
5. mark every case whose facts changed (its row or any record under it) dirty and stamp its
   ``facts_changed_at``, in the same transaction (``watchdog.deadline_marks``), so the poll
   recomputes those and no commit can be missed; then the data-quality warnings.

``import_records`` wraps it for the CLI and the file sources, ``import_valid`` for the API: one
transaction (run again after a lost race), then the deadlines of the affected cases are
recomputed (``watchdog.recompute.refresh_deadlines``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from watchdog import collector
from watchdog.clock import ensure_aware
from watchdog.db import is_concurrency_conflict
from watchdog.errors import Problem, ValidationFailed, WatchdogError
from watchdog.intake.checks import check_records
from watchdog.intake.parsing import RawRecord
from watchdog.intake.schemas import (
    ENTITIES,
    ENTITY_ORDER,
    SENSITIVE_REASON,
    EntitySpec,
    is_sensitive_column,
)
from watchdog.intake.writing import ChunkWriter, Counts, UpsertResult, ValidRecord  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

#: Raw records to give ``import_records``: a list, or a function that reads them again (a stream
#: of files, in dependency order) each time the import runs; a list is put in dependency order.
RawSource = Sequence[RawRecord] | Callable[[], Iterable[RawRecord]]


class IntakeConflict(WatchdogError):
    """Another writer stored the same records at the same moment; nothing of this batch was kept."""


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


def iter_valid(records: Iterable[RawRecord], problems: list[Problem], *,
               progress: Callable[[int], None] | None = None) -> Iterator[ValidRecord]:
    """Every raw record through its model: the valid ones, as they come; every problem found
    is added to ``problems``."""
    # Each model's own validator, called as model_validate calls it (without its Python frame).
    validators = {name: spec.model.__pydantic_validator__.validate_python for name, spec in ENTITIES.items()}
    interned: dict[frozenset[str], frozenset[str]] = {}
    for raw in records:
        if progress:
            progress(1)
        validate = validators.get(raw.entity)
        if raw.problems:
            problems.extend(raw.problems)
        if validate is None:
            continue
        try:
            model = validate(raw.values)
        except ValidationError as exc:
            # Skip errors on fields whose cell was already refused while reading it.
            spec = ENTITIES[raw.entity]
            already = {p.field for p in raw.problems}
            problems.extend(p for p in problems_from_pydantic(exc.errors(), spec, raw.source, raw.record)
                            if p.field not in already and not (p.reason == "required" and p.field in already))
            continue
        if raw.problems:
            continue
        given = frozenset(model.model_fields_set)
        # The same few sets of fields (one per file's header) serve every record: one object each.
        yield ValidRecord(ENTITIES[raw.entity], raw.source, raw.record, model, interned.setdefault(given, given))


def validate_raw(records: Sequence[RawRecord], *, progress: Callable[[int], None] | None = None
                 ) -> tuple[list[ValidRecord], list[Problem]]:
    """Every raw record through its model. Returns the valid ones and every problem found."""
    problems: list[Problem] = []
    valid = list(iter_valid(records, problems, progress=progress))
    return valid, problems


# ------------------------------------------------------------------------------------------
# 2.–5. Resolution and writing, chunk by chunk (watchdog.intake.writing)
# ------------------------------------------------------------------------------------------

#: Records validated and written at a time: memory is bounded by this, not by the import.
CHUNK = 2000
#: Records per data-quality statement after the last chunk (only the offending rows come back).
#: Bigger than a chunk: with 2,000 keys PostgreSQL probed the index once per key; with 50,000 it
#: hashes the keys and reads the table once (the national export: 2.5 s → 0.6 s; SQLite 0.8 →
#: 0.7 s). The keys are the import's ext_ids, already held (``writing.Origins``).
QUALITY_KEYS = 50_000


def _reading_order(problem: Problem) -> tuple:
    """Problems of a file in row order, whichever check found them."""
    number = problem.record.split(" ", 1)[0]
    return (problem.source, int(number) if number.isdigit() else -1)


def _chunks(records: Iterable[ValidRecord], size: int) -> Iterator[list[ValidRecord]]:
    """Consecutive records of one entity, at most ``size`` at a time."""
    chunk: list[ValidRecord] = []
    for rec in records:
        if chunk and (len(chunk) >= size or rec.spec is not chunk[0].spec):
            yield chunk
            chunk = []
        chunk.append(rec)
    if chunk:
        yield chunk


def upsert_records(session: Session, records: Iterable[ValidRecord], *, now: datetime, settings,
                   problems: list[Problem], progress: Callable[[int], None] | None = None,
                   quality: bool = True) -> UpsertResult:
    """Check and write ``records`` (in dependency order) in ``session``: flushes, never commits.

    ``problems`` holds what was refused before (and, while ``records`` is consumed, what its
    validation refuses): the writing stops at the first problem, the checking goes on, and then
    ValidationFailed names every problem (the caller rolls back: nothing is stored).
    """
    now = ensure_aware(now, what="now")
    writer = ChunkWriter(session, now=now, problems=problems)
    chunks = _chunks(records, CHUNK)
    while True:
        # Reading, validating and writing a chunk builds tens of thousands of objects that live
        # until its end: the collector waits for the chunk (``watchdog.collector``).
        with collector.paused():
            chunk = next(chunks, None)
            if chunk is None:
                break
            problems.extend(check_records(chunk, settings=settings, now=now))
            writer.add(chunk)
        if progress:
            progress(len(chunk))
    if problems:
        raise ValidationFailed(sorted(problems, key=_reading_order))
    # In this transaction: the poll sees these cases dirty exactly when it sees their facts.
    writer.finish()
    if quality:
        writer.result.warnings = writer.quality(chunk=QUALITY_KEYS)
    return writer.result


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
    """Write validated ``records`` in one transaction (or roll back for a dry run), then recompute
    deadlines. The HTTP API's path: its records passed their model when the request was read."""
    ordered = sorted(records, key=_dependency_order)
    return _import(engine, lambda problems: iter(ordered), now=now, settings=settings, dry_run=dry_run,
                   progress=progress, prior_problems=prior_problems, sleep=sleep)


def import_records(engine: Engine, raw: RawSource, *, now: datetime, settings,
                   dry_run: bool = False, progress: Callable[[int], None] | None = None,
                   file_problems: Sequence[Problem] = (), sleep: Callable[[float], None] = time.sleep
                   ) -> UpsertResult:
    """Validate and write the raw records, then recompute deadlines. Nothing is stored if
    anything is refused.

    ``raw``: a list of records, or a function that reads them (again, for each attempt) in
    dependency order, such as a ``parsing.FileStream`` (which gives a problem with a whole file as
    a record that holds only that problem). ``file_problems`` are problems already found with
    whole files (``parsing.read_files``): they refuse the import too, but the other records are
    still checked so that every problem is named.
    """
    if callable(raw):
        read = raw
    else:
        ordered = sorted(raw, key=_dependency_order)
        read = lambda: ordered  # noqa: E731
    return _import(engine, lambda problems: iter_valid(read(), problems, progress=progress), now=now,
                   settings=settings, dry_run=dry_run, progress=progress, prior_problems=file_problems,
                   sleep=sleep)


def _dependency_order(rec) -> int:
    name = rec.spec.name if isinstance(rec, ValidRecord) else rec.entity
    return _ORDER.get(name, -1)  # unknown entities first: they are only problems


_ORDER = {name: i for i, name in enumerate(ENTITY_ORDER)}


def _import(engine: Engine, valid: Callable[[list[Problem]], Iterable[ValidRecord]], *, now: datetime,
            settings, dry_run: bool, progress, prior_problems: Sequence[Problem], sleep) -> UpsertResult:
    """One transaction (or a rolled-back dry run) over ``valid(problems)``, then the recompute.

    A transaction that loses a race with a concurrent writer is rolled back and run again from
    the start (reading the records again; it then sees what the other stored), at most
    ``CONFLICT_ATTEMPTS`` times; after that ``IntakeConflict`` (HTTP 409). Nothing of a failed
    attempt is kept.
    """
    started = time.perf_counter()
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        problems = list(prior_problems)
        first = progress if attempt == 1 else None
        with Session(engine, expire_on_commit=False) as session:
            try:
                result = upsert_records(session, valid(problems), now=now, settings=settings,
                                        problems=problems, progress=first)
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
    result.seconds["import"] = time.perf_counter() - started
    if not dry_run and result.affected_case_ids:
        started = time.perf_counter()
        result.deadlines_recomputed = recompute_deadlines(engine, result.affected_case_ids, now=now,
                                                          settings=settings)
        result.seconds["deadlines"] = time.perf_counter() - started
    return result


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
