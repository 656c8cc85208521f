"""Stage 1 intake: write validated records to the case store chunk by chunk, with Core statements.

I/O: the database, in the session it is given (never commits). No clock: ``now`` comes in.

Records arrive in dependency order (teams → workers → absences → cases → notifications →
investigations → measures → follow-ups → visits), in chunks of one entity. For each chunk:

1. the configured checks (``intake.checks``), duplicates inside the import, and references by
   ``ext_id`` — to rows already stored or to records earlier in the same import — collect every
   problem; after the first problem nothing more is written (the caller rolls back), but every
   later record is still checked, so one run names every problem;
2. the chunk's stored rows and the ids of everything it refers to are read in one statement per
   table, the keys bound as one parameter (``intake.lookup``);
3. new and changed rows go in one ``INSERT … ON CONFLICT (ext_id) DO UPDATE … WHERE <a column
   differs>`` per chunk (on SQLite the driver's executemany, on PostgreSQL one statement over
   ``unnest`` of an array per column); identical rows are not sent at all, so re-importing the
   same export writes nothing and marks no case dirty. Changed rows of stored cases are written
   at the end, with their dirty marks, in id order (``deadline_marks.mark_changed``): every writer
   of case rows locks them in that order.

Memory is bounded by the chunk, plus one small entry per imported record (its ``ext_id`` and
where it came from: duplicates are named with their first occurrence, and the data-quality
checks after the last chunk name file and row).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Boolean, bindparam, cast, delete, func, literal_column, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from watchdog.casestore import Measure, ReassessmentParticipant
from watchdog.db import dialect_insert
from watchdog.errors import Problem
from watchdog.intake.lookup import Lookups
from watchdog.intake.schemas import ENTITIES, ENTITY_ORDER, PARTICIPANTS_FIELD, EntitySpec

#: Ids per ``IN (…)`` list: well under SQLite's and PostgreSQL's parameter limits.
_IDS = 900
_UNNEST_MARK = "-- unnest\n"
_NOTHING_GIVEN: frozenset[str] = frozenset()
_SUPPORT_GIVEN = frozenset({"child_in_support"})
_CASE_CHILDREN = ("notifications", "investigations", "measures")
_MEASURE_CHILDREN = ("follow_ups", "visits")
# The entities the data-quality checks look at after the last chunk (intake.quality).
_CHECKED = ("notifications", "investigations", "measures", "follow_ups")


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
    # Wall-clock seconds: the import to its commit (validation included), then the recompute.
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "counts": {n: vars(c) for n, c in self.counts.items() if c.total},
            "cases_affected": len(self.affected_case_ids),
            "deadlines_recomputed": self.deadlines_recomputed,
            "warnings": [w.as_dict() for w in self.warnings],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


@dataclass
class ValidRecord:
    """A record that passed its model: where it came from, and which fields it gave."""

    spec: EntitySpec
    source: str
    record: str
    data: Any  # the input model instance
    given: frozenset[str]  # fields present in the input (absent ones keep their stored value)
    ext_id: str = field(init=False)  # the model's, read once: every stage looks it up

    def __post_init__(self) -> None:
        self.ext_id = self.data.ext_id


class Imported(NamedTuple):
    """What the data-quality checks need of an imported record, kept after its chunk is gone
    (a tuple: one is made for every record of the import)."""

    spec: EntitySpec
    ext_id: str
    source: str
    record: str
    given: frozenset[str]


class Origins:
    """Where each record of the import came from, one small int per record (``ext_id`` → source
    and row), so a duplicate names its first occurrence and a warning its file and row."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self.by_entity: dict[str, dict[str, Any]] = defaultdict(dict)
        self.support_not_given: set[str] = set()  # notifications that leave child_in_support alone

    def add(self, rec: ValidRecord) -> tuple[str, str] | None:
        """Note ``rec``; the (source, record) of an earlier record with its ext_id, if any."""
        seen = self.by_entity[rec.spec.name]
        earlier = seen.get(rec.ext_id)
        if earlier is not None:
            return self._unpack(earlier)
        index = self._source_index.get(rec.source)
        if index is None:
            index = self._source_index[rec.source] = len(self.sources)
            self.sources.append(rec.source)
        number = rec.record
        seen[rec.ext_id] = ((index << 40) | int(number) if number.isdigit() and str(int(number)) == number
                            and int(number) < 1 << 40 else (index, number))
        if rec.spec.name == "notifications" and "child_in_support" not in rec.given:
            self.support_not_given.add(rec.ext_id)
        return None

    def _unpack(self, packed: Any) -> tuple[str, str]:
        if isinstance(packed, tuple):
            return self.sources[packed[0]], packed[1]
        return self.sources[packed >> 40], str(packed & ((1 << 40) - 1))

    def knows(self, entity: str, ext_id: str) -> bool:
        return ext_id in self.by_entity.get(entity, ())

    def imported(self, entity: str) -> Iterable[Imported]:
        spec = ENTITIES[entity]
        for ext_id, packed in self.by_entity.get(entity, {}).items():
            source, record = self._unpack(packed)
            given = _NOTHING_GIVEN if ext_id in self.support_not_given else _SUPPORT_GIVEN
            yield Imported(spec, ext_id, source, record, given)


def references(rec: ValidRecord) -> Iterable[tuple[str, str, str]]:
    """(field, target entity, ext_id) of every reference the record gives."""
    for fld, (target, _column) in rec.spec.refs.items():
        if fld in rec.given:
            value = getattr(rec.data, fld)
            if value is not None:
                yield fld, target, value
    if rec.spec.name == "notifications" and PARTICIPANTS_FIELD in rec.given:
        for i, worker in enumerate(rec.data.reassessment_participants or ()):
            yield f"{PARTICIPANTS_FIELD}[{i}]", "workers", worker


def _columns(spec: EntitySpec) -> list[tuple[str, str]]:
    """(field, table column) of every field stored in the entity's own table."""
    return [(name, spec.refs[name][1] if name in spec.refs else name) for name in spec.fields
            if name not in ("ext_id", PARTICIPANTS_FIELD)]


class ChunkWriter:
    """The writing half of one import attempt, fed chunk by chunk (``add``), then ``finish``."""

    def __init__(self, session: Session, *, now: datetime, problems: list[Problem]) -> None:
        self.session = session
        self.now = now
        self.problems = problems  # shared with the validation: any problem stops the writing
        self.result = UpsertResult()
        self.origins = Origins()
        self.case_changes: dict[int, dict[str, Any]] = {}
        # Cases this transaction inserted itself (known on PostgreSQL): new rows start dirty,
        # stamped ``now``, and no other writer can see them before the commit, so they need no mark.
        self.created_case_ids: set[int] = set()
        self._insert = dialect_insert(session)
        self._statements: dict[str, tuple] = {}
        self.lookups = Lookups(session)

    @property
    def writing(self) -> bool:
        return not self.problems

    # -- checks --------------------------------------------------------------------------

    def _ids(self, entity: str, ext_ids: Iterable[str]) -> dict[str, int]:
        table = ENTITIES[entity].table.__table__
        return self.lookups.mapping(table.c.ext_id, table.c.id, sorted(set(ext_ids)))

    def _unique(self, chunk: Sequence[ValidRecord]) -> list[ValidRecord]:
        kept = []
        for rec in chunk:
            first = self.origins.add(rec)
            if first is None:
                kept.append(rec)
            else:
                self.problems.append(Problem(rec.source, rec.record, "ext_id",
                                             f"{rec.ext_id!r} appears twice in this import "
                                             f"(first in {first[0]}, record {first[1]})"))
        return kept

    def _resolve(self, chunk: Sequence[ValidRecord]) -> dict[str, dict[str, int]]:
        """The ids of everything the chunk refers to; a problem for each unknown reference."""
        wanted: dict[str, set[str]] = defaultdict(set)
        given = [(rec, list(references(rec))) for rec in chunk]
        for _rec, refs in given:
            for _fld, target, ext_id in refs:
                wanted[target].add(ext_id)
        ids = {target: self._ids(target, ext_ids) for target, ext_ids in wanted.items()}
        for rec, refs in given:
            for fld, target, ext_id in refs:
                if ext_id not in ids[target] and not self.origins.knows(target, ext_id):
                    self.problems.append(Problem(rec.source, rec.record, fld,
                                                 f"unknown {target.rstrip('s')} {ext_id!r}: neither in this "
                                                 "import nor already stored"))
        return ids

    # -- one chunk -----------------------------------------------------------------------

    def add(self, chunk: Sequence[ValidRecord]) -> None:
        """Check one chunk of records of one entity, and write it while nothing was refused."""
        if not chunk:
            return
        chunk = self._unique(chunk)
        ids = self._resolve(chunk)
        if not self.writing or not chunk:
            return
        spec = chunk[0].spec
        table = spec.table.__table__
        columns = _columns(spec)
        stored: dict[str, Any] = {row.ext_id: row for row in self.lookups.rows(
            table.c.ext_id, tuple(table.c), sorted(rec.ext_id for rec in chunk))}
        counts = self.result.counts[spec.name]
        rows: list[dict[str, Any]] = []  # to the upsert: new and changed rows, whole
        new: set[str] = set()
        touched: list[tuple[ValidRecord, Any, dict[str, Any], dict[str, Any]]] = []  # rec, old, values, before
        # Per column: the field, the column, and the ids its references resolve to (None: no reference).
        plan = [(name, column, ids.get(spec.refs[name][0], {}) if name in spec.refs else None)
                for name, column in columns]
        for rec in sorted(chunk, key=_by_ext_id):
            old = stored.get(rec.ext_id)
            data = rec.data.__dict__  # the validated model's field values
            given = rec.given
            values = {column: data[name] if ref is None or data[name] is None else ref[data[name]]
                      for name, column, ref in plan if old is None or name in given}
            if old is None:
                if spec.name == "cases":
                    values["facts_changed_at"] = self.now
                new.add(rec.ext_id)
                rows.append({"ext_id": rec.ext_id, **values})
                touched.append((rec, None, values, {}))
                continue
            before = {k: getattr(old, k) for k, v in values.items() if getattr(old, k) != v}
            if before:
                if spec.name == "cases":  # written at the end, with the case's dirty mark
                    self.case_changes[old.id] = {k: values[k] for k in before}
                else:
                    rows.append({"ext_id": rec.ext_id, **{c: getattr(old, c) for _n, c in columns}, **values})
            touched.append((rec, old, values, before))
        new_ids = self._upsert(spec, columns, rows, new) if rows else {}
        self._settle(spec, touched, new_ids, ids, counts)

    def _upsert(self, spec: EntitySpec, columns: list[tuple[str, str]], rows: list[dict[str, Any]],
                new: set[str]) -> dict[str, int]:
        """One INSERT … ON CONFLICT DO UPDATE … WHERE changed for the rows; the ids of the new ones.

        Run as the driver's executemany of the compiled statement (SQLite) or one statement over an
        array per column (PostgreSQL), each value through its column's bind processor: SQLAlchemy's
        own executemany builds a parameter set per row, which cost more than the database's work."""
        sql, names, processors, named, defaults = self._statement(spec, columns)
        if defaults:
            rows = [{**defaults, **row} for row in rows]
        # Every row names every column (a new row all of them, a changed one its stored values too).
        columns_of = [list(values) if p is None else list(map(p, values))
                      for values, p in zip(zip(*map(itemgetter(*names), rows)), processors)]
        if sql.startswith(_UNNEST_MARK):  # PostgreSQL: one statement per chunk, a column per array
            params = dict(zip(names, columns_of))
            written = self.session.connection().exec_driver_sql(sql.removeprefix(_UNNEST_MARK), params).all()
            # Rows this statement inserted (xmax = 0), not a concurrent writer's updated on conflict.
            inserted = {ext_id: id_ for ext_id, id_, fresh in written if fresh and ext_id in new}
            if spec.name == "cases":
                self.created_case_ids.update(inserted.values())
            rest = new.difference(inserted)
            return {**inserted, **self._ids(spec.name, rest)} if rest else inserted
        if named:
            params: list = [dict(zip(names, row)) for row in zip(*columns_of)]
        else:
            params = list(zip(*columns_of))
        self.session.connection().exec_driver_sql(sql, params)
        return self._ids(spec.name, new) if new else {}

    def _statement(self, spec: EntitySpec, columns: list[tuple[str, str]]):
        """The compiled upsert of ``spec``'s table: (SQL, parameter names, bind processors, named?)."""
        cached = self._statements.get(spec.name)
        if cached is not None:
            return cached
        table = spec.table.__table__
        names = ["ext_id", *(c for _n, c in columns)]
        if spec.name == "cases":
            names.append("facts_changed_at")
        stmt = self._insert(table).values({n: bindparam(n) for n in names})
        updated = [c for _n, c in columns]
        stmt = stmt.on_conflict_do_update(
            index_elements=["ext_id"], set_={c: stmt.excluded[c] for c in updated},
            where=or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in updated)))
        dialect = self.session.get_bind().dialect
        compiled = stmt.compile(dialect=dialect)
        order = list(compiled.positiontup) if compiled.positional else list(compiled.params)
        processors = [_bind_processor(table.c[n], dialect) for n in order]
        # Columns the compiler added for their Python-side defaults (a new case starts dirty).
        defaults = {n: _default(table.c[n]) for n in order if n not in names}
        if dialect.name == "postgresql":
            # The same upsert over unnest(array per column): psycopg's executemany sends a statement
            # per row, which cost several times the database's work.
            source = select(literal_column("*")).select_from(func.unnest(*(
                cast(bindparam(n), ARRAY(table.c[n].type)) for n in order)))
            stmt = self._insert(table).from_select(order, source)
            stmt = stmt.on_conflict_do_update(
                index_elements=["ext_id"], set_={c: stmt.excluded[c] for c in updated},
                where=or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in updated)),
            ).returning(table.c.ext_id, table.c.id, literal_column("xmax = 0"))
            compiled = stmt.compile(dialect=dialect)
            cached = self._statements[spec.name] = (_UNNEST_MARK + compiled.string, order, processors, True,
                                                    defaults)
            return cached
        cached = self._statements[spec.name] = (compiled.string, order, processors, not compiled.positional,
                                                defaults)
        return cached

    def _settle(self, spec: EntitySpec, touched, new_ids: dict[str, int], ids, counts: Counts) -> None:
        """Participants, counts, and the cases whose facts changed."""
        name = spec.name
        participants = self._participants(touched, new_ids, ids) if name == "notifications" else set()
        measure_case: dict[int, int] = {}
        if name in _MEASURE_CHILDREN:
            wanted = {m for _r, old, values, before in touched if old is None or before
                      for m in (values.get("measure_id"), before.get("measure_id")) if m is not None}
            measure_case = self._measure_cases(wanted)
        affected = self.result.affected_case_ids
        for rec, old, values, before in touched:
            is_new = old is None
            changed = bool(before) or rec.ext_id in participants
            if is_new:
                counts.created += 1
            elif changed:
                counts.updated += 1
            else:
                counts.unchanged += 1
                continue
            if name == "cases":
                affected.add(new_ids[rec.ext_id] if is_new else old.id)
            elif name in _CASE_CHILDREN:
                affected.add(values["case_id"] if "case_id" in values else old.case_id)
                if before.get("case_id") is not None:
                    affected.add(before["case_id"])
            elif name in _MEASURE_CHILDREN:
                for measure_id in (values.get("measure_id", None if is_new else old.measure_id),
                                   before.get("measure_id")):
                    if measure_id is not None:
                        affected.add(measure_case[measure_id])

    def _measure_cases(self, measure_ids: set[int]) -> dict[int, int]:
        M = Measure.__table__
        return self.lookups.mapping(M.c.id, M.c.case_id, sorted(measure_ids))

    def _participants(self, touched, new_ids: dict[str, int], ids) -> set[str]:
        """Make the stored participants equal the given lists. The ext_ids whose list changed."""
        given = [(rec, new_ids[rec.ext_id] if old is None else old.id) for rec, old, _v, _b in touched
                 if PARTICIPANTS_FIELD in rec.given]
        if not given:
            return set()
        P = ReassessmentParticipant.__table__
        have: dict[int, set[int]] = defaultdict(set)
        stored_ids = sorted(nid for rec, nid in given if rec.ext_id not in new_ids)
        for nid, wid in self.lookups.rows(P.c.notification_id, (P.c.notification_id, P.c.worker_id), stored_ids):
            have[nid].add(wid)
        changed, gone, added = set(), [], []
        for rec, nid in given:
            wanted = {ids["workers"][w] for w in (rec.data.reassessment_participants or ())}
            if wanted == have.get(nid, set()):
                continue
            changed.add(rec.ext_id)
            gone.extend((nid, w) for w in sorted(have.get(nid, set()) - wanted))
            added.extend({"notification_id": nid, "worker_id": w} for w in sorted(wanted - have.get(nid, set())))
        for start in range(0, len(gone), _IDS):
            self.session.execute(delete(P).where(tuple_(P.c.notification_id, P.c.worker_id)
                                                 .in_(gone[start:start + _IDS])))
        if added:
            self.session.execute(P.insert(), added)
        return changed

    # -- after the last chunk ------------------------------------------------------------

    def finish(self) -> None:
        """The stored cases' changed rows and every affected case's dirty mark, in id order."""
        from watchdog.deadline_marks import mark_changed

        mark_changed(self.session, self.result.affected_case_ids - self.created_case_ids, now=self.now,
                     changes=self.case_changes)

    def quality(self, *, chunk: int) -> list:
        """The data-quality checks over every imported record, ``chunk`` records at a time."""
        from watchdog.intake.quality import check_imported

        findings: list = []
        for entity in _CHECKED:
            batch: list[Imported] = []
            for rec in self.origins.imported(entity):
                batch.append(rec)
                if len(batch) >= chunk:
                    findings.extend(check_imported(self.session, batch, now=self.now))
                    batch = []
            if batch:
                findings.extend(check_imported(self.session, batch, now=self.now))
        return findings


def _sqlite_instant(value: datetime | None) -> str | None:
    """UTCDateTime's bind processor and SQLite's DATETIME one in a single step: the UTC wall time as
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (the same text, checked in tests/test_import_stream.py)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError("Datetime values must have timezone information.")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _bind_processor(column, dialect):
    """The column's bind processor, or a cheaper one that gives the same value for what the input
    models produce: a validated bool passes as it is, an instant goes to SQLite's text in one step."""
    kind = column.type
    generic = kind.dialect_impl(dialect).bind_processor(dialect)
    if generic is None:
        return None
    if isinstance(kind, Boolean):
        return None  # the models give True, False or None: what the driver takes
    if isinstance(kind, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_instant
    return generic


def _default(column) -> Any:
    default = column.default
    if default is None or not default.is_scalar:
        raise RuntimeError(f"the import cannot fill {column.table.name}.{column.name}: no constant default")
    return default.arg


def _by_ext_id(rec: ValidRecord) -> str:
    return rec.ext_id
