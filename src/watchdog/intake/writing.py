"""Stage 1 intake: write validated records to the case store chunk by chunk, with Core statements.

I/O: the database, in the session it is given (never commits). No clock: ``now`` comes in.

Records arrive in dependency order (teams → workers → absences → cases → notifications →
investigations → measures → follow-ups → visits), in chunks of one entity. For each chunk:

1. the configured checks (``intake.checks``), duplicates inside the import, and references by
   ``ext_id`` — to rows already stored or to records earlier in the same import — collect every
   problem; after the first problem nothing more is written (the caller rolls back), but every
   later record is still checked, so one run names every problem;
2. the chunk's stored rows are read in one statement, the keys bound as one parameter
   (``intake.lookup``) — on PostgreSQL not when the entity's previous chunk found none (a first
   import): its rows then go as new by one COPY that fails if one was stored after all, and only
   then is the chunk read and written the usual way; the ids of what it refers to come from
   memory for records earlier in this import (``intake.origins``: each written record's id is
   kept), from the database (one statement per table) only for the rest;
3. new and changed rows go in one ``INSERT … ON CONFLICT (ext_id) DO UPDATE … WHERE <a column
   differs> RETURNING`` per chunk (``intake.upsert_sql``: multi-row VALUES on SQLite, a binary COPY
   into a staging table on PostgreSQL, or straight into the table when no row was stored);
   identical rows are not sent at all, so re-importing the same export writes nothing and marks
   no case dirty. Changed rows of stored cases are written
   at the end, with their dirty marks, in id order (``deadline_marks.mark_changed``): every writer
   of case rows locks them in that order.

Memory is bounded by the chunk, plus one small entry per imported record (``intake.origins``: its
``ext_id``, where it came from — duplicates are named with their first occurrence, and the
data-quality checks after the last chunk name file and row — and its row's id if others refer
to its entity).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import delete, tuple_
from sqlmodel import Session

from watchdog.casestore import Measure, ReassessmentParticipant
from watchdog.db import dialect_insert
from watchdog.errors import Problem
from watchdog.intake.lookup import Lookups
from watchdog.intake.origins import REFERENCED, Imported, Origins, references  # noqa: F401 (re-exported)
from watchdog.intake.schemas import ENTITIES, ENTITY_ORDER, PARTICIPANTS_FIELD, EntitySpec
from watchdog.intake.upsert_sql import Upsert, defaults_of

#: Ids per ``IN (…)`` list: well under SQLite's and PostgreSQL's parameter limits.
_IDS = 900
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


@dataclass(slots=True)
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
        # Cases this transaction inserted itself (known on PostgreSQL; on SQLite once the import
        # holds the write lock, ``_own_inserts``): new rows start dirty, stamped ``now``, and no
        # other writer can see them before the commit, so they need no mark.
        self.created_case_ids: set[int] = set()
        self._insert = dialect_insert(session)
        self._statements: dict[str, tuple[Upsert, tuple, tuple]] = {}
        self._nothing_stored: dict[str, bool] = {}  # entity → its last chunk's read found no row
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
        """The ids of everything the chunk refers to; a problem for each unknown reference.

        Records of this import written in an earlier chunk are found in memory (``Origins``);
        only the other references are looked up in the database."""
        wanted: dict[str, set[str]] = defaultdict(set)
        spec = chunk[0].spec if chunk else None
        plain = [(fld, target) for fld, (target, _column) in spec.refs.items()] if spec else []
        for rec in chunk:  # the references of ``references(rec)``, without a generator per record
            data, given = rec.data.__dict__, rec.given
            for fld, target in plain:
                if fld in given and data[fld] is not None:
                    wanted[target].add(data[fld])
            if PARTICIPANTS_FIELD in given and spec.name == "notifications":
                wanted["workers"].update(data[PARTICIPANTS_FIELD] or ())
        ids: dict[str, dict[str, int]] = {}
        unknown = False
        for target, ext_ids in wanted.items():
            found, rest = self.origins.ids(target, ext_ids)
            if not self.writing:  # nothing is written: a record of this import needs no id
                rest = {ext_id for ext_id in rest if not self.origins.knows(target, ext_id)}
            if rest:
                found.update(self._ids(target, rest))
                unknown = unknown or not rest.issubset(found)
            ids[target] = found
        if not unknown:
            return ids
        for rec in chunk:  # name each unknown reference with its record and field
            for fld, target, ext_id in references(rec):
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
        upsert, tail, stored_tail = self._statement(spec, columns)
        own = self._own_inserts()  # before the read: what it sees is what the upsert meets
        counts = self.result.counts[spec.name]
        # Per column: the field, the column, and the ids its references resolve to (None: no reference).
        plan = [(name, column, ids.get(spec.refs[name][0], {}) if name in spec.refs else None)
                for name, column in columns]
        # PostgreSQL, when this entity's last chunk found nothing stored (a first import): no read;
        # the rows go as new by one COPY, which fails on the unique ext_id if any was stored after
        # all (then back to its savepoint, the read and the upsert, as for any chunk).
        guess = upsert.dialect.name == "postgresql" and self._nothing_stored.get(spec.name, False)
        stored = {} if guess else self._stored(table, chunk)
        rows, new, touched = self._rows(spec, chunk, stored, plan, columns, tail, stored_tail)
        new_ids = None
        if guess:
            copied = upsert.copy_new(self.session.connection(), rows)
            if copied is None:
                stored = self._stored(table, chunk)
                rows, new, touched = self._rows(spec, chunk, stored, plan, columns, tail, stored_tail)
            else:
                new_ids = {ext_id: id_ for ext_id, id_, _fresh in copied}
                if spec.name == "cases":
                    self.created_case_ids.update(new_ids.values())
        if new_ids is None:
            new_ids = self._upsert(spec, upsert, rows, new, own=own) if rows else {}
        self._nothing_stored[spec.name] = not stored
        if spec.name in REFERENCED:  # later chunks find these ids in memory
            self.origins.set_ids(spec.name, chain(new_ids.items(), ((e, row.id) for e, row in stored.items())))
        self._settle(spec, touched, new_ids, ids, counts)

    def _stored(self, table, chunk: Sequence[ValidRecord]) -> dict[str, Any]:
        """The stored rows of the chunk's records, by ext_id."""
        return {row.ext_id: row for row in self.lookups.typed(
            table.c.ext_id, tuple(table.c), sorted(rec.ext_id for rec in chunk))}

    def _rows(self, spec: EntitySpec, chunk: Sequence[ValidRecord], stored: dict[str, Any], plan, columns,
              tail: tuple, stored_tail: tuple) -> tuple[list[tuple], set[str], list[tuple]]:
        """The rows to upsert (new and changed, whole, in ``Upsert.names`` order), the ext_ids of
        the new ones, and (rec, old row, values, changed values before) of every record."""
        rows: list[tuple] = []
        new: set[str] = set()
        touched: list[tuple[ValidRecord, Any, dict[str, Any], dict[str, Any]]] = []
        for rec in sorted(chunk, key=_by_ext_id):
            old = stored.get(rec.ext_id)
            data = rec.data.__dict__  # the validated model's field values
            if old is None:
                values = {column: data[name] if ref is None or data[name] is None else ref[data[name]]
                          for name, column, ref in plan}
                new.add(rec.ext_id)
                rows.append((rec.ext_id, *values.values(), *tail))  # values in column order
                touched.append((rec, None, values, {}))
                continue
            given = rec.given
            values = {column: data[name] if ref is None or data[name] is None else ref[data[name]]
                      for name, column, ref in plan if name in given}
            before = {k: getattr(old, k) for k, v in values.items() if getattr(old, k) != v}
            if before:
                if spec.name == "cases":  # written at the end, with the case's dirty mark
                    self.case_changes[old.id] = {k: values[k] for k in before}
                else:
                    rows.append((rec.ext_id, *[values[c] if c in values else getattr(old, c) for _n, c in columns],
                                 *stored_tail))
            touched.append((rec, old, values, before))
        return rows, new, touched

    def _upsert(self, spec: EntitySpec, upsert: Upsert, rows: list[tuple], new: set[str], *,
                own: bool) -> dict[str, int]:
        """One INSERT … ON CONFLICT DO UPDATE … WHERE changed … RETURNING for the rows
        (``intake.upsert_sql``); the ids of the new ones. ``own``: see ``_own_inserts``."""
        written = upsert.write(self.session.connection(), rows, all_new=len(new) == len(rows))
        if upsert.dialect.name == "postgresql":
            # Rows this statement inserted (xmax = 0), not a concurrent writer's updated on conflict.
            inserted = {ext_id: id_ for ext_id, id_, fresh in written if fresh and ext_id in new}
        else:
            # SQLite cannot tell an inserted row from one updated on conflict; either is the row
            # of that ext_id, whose id is wanted (what the lookup below would find).
            inserted = {ext_id: id_ for ext_id, id_, _fresh in written if ext_id in new}
        if spec.name == "cases" and own:
            self.created_case_ids.update(inserted.values())
        rest = new.difference(inserted)  # a concurrent writer's identical row: not returned
        return {**inserted, **self._ids(spec.name, rest)} if rest else inserted

    def _own_inserts(self) -> bool:
        """Whether a returned row of a record the chunk's read did not find is surely one this
        import inserted. PostgreSQL: always (``xmax = 0`` tells). SQLite: once this transaction
        has written (the driver begins it at the first write): from then on it holds the write
        lock and reads its own snapshot, so no other writer's row can appear between the read and
        the upsert. Before that (the import's first chunk) the read ran outside the transaction."""
        if self.session.get_bind().dialect.name == "postgresql":
            return True
        return bool(self.session.connection().connection.dbapi_connection.in_transaction)

    def _statement(self, spec: EntitySpec, columns: list[tuple[str, str]]) -> tuple[Upsert, tuple, tuple]:
        """The upsert of ``spec``'s table, and what follows a new row's and a changed row's column
        values in its parameters (a new case's ``facts_changed_at``; Python-side defaults)."""
        cached = self._statements.get(spec.name)
        if cached is not None:
            return cached
        table = spec.table.__table__
        names = ["ext_id", *(c for _n, c in columns)]
        stamped = ("facts_changed_at",) if spec.name == "cases" else ()
        defaults = defaults_of(table, [*names, *stamped])
        upsert = Upsert(table, [*names, *stamped, *defaults], [c for _n, c in columns],
                        self.session.get_bind().dialect, self._insert)
        # A changed row is never a case (those are written at the end, with their marks).
        cached = self._statements[spec.name] = (upsert, (*((self.now,) if stamped else ()), *defaults.values()),
                                                tuple(defaults.values()))
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
        """The data-quality checks over every imported record, ``chunk`` ext_ids at a time (no
        record object each: ``Origins`` names a finding's file and row)."""
        from functools import partial

        from watchdog.intake.quality import check_stored

        findings: list = []
        for entity in _CHECKED:
            ext_ids = list(self.origins.by_entity.get(entity, ()))
            unflagged = self.origins.support_not_given if entity == "notifications" else ()
            origin = partial(self.origins.origin, entity)
            for start in range(0, len(ext_ids), chunk):
                findings.extend(check_stored(self.session, entity, ext_ids[start:start + chunk], now=self.now,
                                             origin=origin, unflagged=unflagged))
        return findings


def _by_ext_id(rec: ValidRecord) -> str:
    return rec.ext_id
