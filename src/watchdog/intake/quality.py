"""Stage 1 intake, data quality: facts that are legal to store but implausible, each a warning.

Each one can make a deadline wrong (a follow-up counted from an effect that came before the
decision, a 24-hour assessment "met" before the underretning arrived), so the import stores them,
names them with file, row and field like a refused record, and ``watchdog report data-quality``
lists them. They refuse nothing: the case system is the source of truth, and the deadline is
still computed from what it says.

I/O: reads the case store and writes ``data_quality_warning`` in the import's own transaction
(``check_imported``, called after the last chunk is upserted, a chunk of records at a time; or
``check_stored``, the same for a list of ext_ids of one entity and where each came from). The
checks (``KINDS``) are comparisons of instants, made by the database (``intake.quality_checks``):
only the rows that show a finding are read. Which warnings a record can show is ``CHECKS``; a
stored warning of a checked record that no longer shows it is resolved. On the first import no
warning is stored for these entities (one query says so), and nothing else is read or written
but the findings.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import UniqueConstraint, bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel

from watchdog.clock import ensure_aware
from watchdog.intake.lookup import Lookups, among, keys_param
from watchdog.intake.quality_checks import keyed, offending


class DataQualityWarning(SQLModel, table=True):
    """One implausible fact of one record; resolved when a later import of it no longer shows it."""

    __tablename__ = "data_quality_warning"
    __table_args__ = (UniqueConstraint("kind", "entity", "record_ext_id", "field",
                                       name="uq_data_quality_warning_subject"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40, index=True)
    entity: str = Field(max_length=30)
    record_ext_id: str = Field(max_length=64)
    field: str = Field(max_length=60)
    case_id: int | None = Field(default=None, index=True)
    case_ref: str | None = Field(default=None, max_length=64)
    source: str = Field(max_length=500)  # the file (or API request) it came from
    record: str = Field(max_length=40)  # the row, line or index in it
    message: str = Field(max_length=500)  # Danish, for the head of unit
    detected_at: datetime
    resolved_at: datetime | None = None


#: Every warning kind with its Danish title (the report's "Type" column and its legend).
KINDS: dict[str, str] = {
    "effected_before_decision": "Foranstaltning iværksat før afgørelsen",
    "completed_before_awareness": "Undersøgelse afsluttet før kommunen blev opmærksom",
    "follow_up_before_effect": "Opfølgning før foranstaltningen blev iværksat",
    "assessed_before_receipt": "Underretning vurderet før den blev modtaget",
    "support_flag_contradicts_measure": "child_in_support = nej, men barnet har en foranstaltning",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    entity: str
    record_ext_id: str
    field: str
    case_id: int | None
    case_ref: str | None
    source: str
    record: str
    message: str

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("case_id")
        out["title"] = KINDS[self.kind]
        return out


#: The (kind, field) each entity's records are checked for, in the order a record's findings are
#: listed. ``child_in_support`` is checked only where the record gives it.
CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    "notifications": (("assessed_before_receipt", "assessed_at"),
                      ("support_flag_contradicts_measure", "child_in_support")),
    "investigations": (("completed_before_awareness", "completed_at"),),
    "measures": (("effected_before_decision", "effected_at"), ("follow_up_before_effect", "effected_at")),
    "follow_ups": (("follow_up_before_effect", "performed_at"),),
}
_SUPPORT = "child_in_support"
_TABLES = {"notifications": "notification", "investigations": "investigation", "measures": "measure",
           "follow_ups": "follow_up"}


def _entity(rec) -> str:
    return rec.spec.name


def check_imported(session: Session, records: Sequence, *, now: datetime) -> list[Finding]:
    """Check the imported records against the store (already upserted, same transaction); store
    new warnings, resolve those a record no longer shows. Returns this import's findings, by
    entity (``CHECKS``' order), then in the order of ``records``.

    ``records`` need ``spec``, ``ext_id``, ``source``, ``record`` and ``given`` (``upsert.ValidRecord``
    or the lighter ``writing.Imported``), one per ``ext_id`` of an entity (as the writer keeps
    them). See ``check_stored``."""
    by_entity: dict[str, dict[str, Any]] = {}  # entity → ext_id → record, in the order given
    for entity, group in groupby(records, key=_entity):
        if entity in CHECKS:
            group = list(group)
            by_entity.setdefault(entity, {}).update(zip(map(_ext_id, group), group))
    findings: list[Finding] = []
    for entity in CHECKS:
        recs = by_entity.get(entity)
        if recs:
            unflagged = {k for k, rec in recs.items() if _SUPPORT not in rec.given} if entity == "notifications" else ()
            findings += check_stored(session, entity, list(recs), now=now, unflagged=unflagged,
                                     origin=lambda ext_id, recs=recs: (recs[ext_id].source, str(recs[ext_id].record)))
    return findings


def check_stored(session: Session, entity: str, ext_ids: Sequence[str], *, now: datetime,
                 origin: Callable[[str], tuple[str, str]], unflagged: Container[str] = ()) -> list[Finding]:
    """``check_imported`` for the imported records ``ext_ids`` (distinct) of one entity, without a
    record object for each: ``origin(ext_id)`` gives a finding's (source, record), ``unflagged``
    holds the notifications whose record leaves ``child_in_support`` alone (not checked against
    the measures). A record is checked when its row is stored; only the rows that show a finding
    are read (``intake.quality_checks``). Returns the findings in the order of ``ext_ids``."""
    from watchdog.casestore import Case

    now = ensure_aware(now, what="now")
    if entity not in CHECKS or not ext_ids:
        return []
    support: Sequence[str] = ()
    if entity == "notifications":
        support = [k for k in ext_ids if k not in unflagged] if unflagged else ext_ids
    raw = offending(session, entity, ext_ids, support=support)
    findings: list[Finding] = []
    if raw:
        position = {ext_id: i for i, ext_id in enumerate(ext_ids)}
        rank = {kind_field: i for i, kind_field in enumerate(CHECKS[entity])}
        raw.sort(key=lambda r: (position[r[0]], rank[r[1], r[2]]))
        for ext_id, kind, field, case_id, message in raw:
            source, record = origin(ext_id)
            findings.append(Finding(kind, entity, ext_id, field, case_id, None, source, record, message))
        # Each finding's case reference, read for all of them at once.
        C = Case.__table__
        case_refs = Lookups(session).mapping(C.c.id, C.c.ext_id,
                                             sorted({f.case_id for f in findings if f.case_id is not None}))
        findings = [replace(f, case_ref=case_refs[f.case_id]) if f.case_id is not None else f for f in findings]
    _store(session, entity, findings, ext_ids, unflagged, now)
    return findings


def _ext_id(rec) -> str:
    return rec.ext_id


def _store(session: Session, entity: str, findings: list[Finding], ext_ids: Sequence[str],
           unflagged: Container[str], now: datetime) -> None:
    """Insert the new findings, refresh the stored ones, resolve the stored warnings of checked
    records that no longer show them. Written with Core statements; nothing is sent for a stored
    warning that is unchanged."""
    W = DataQualityWarning.__table__
    found = {(f.kind, f.entity, f.record_ext_id, f.field): f for f in findings}
    # None stored for this entity yet (the first import): nothing to look up or resolve.
    kinds = sorted({kind for kind, _field in CHECKS[entity]})  # (kind, entity): the unique index's first columns
    none_yet = session.execute(sa_select(W.c.id).where(W.c.kind.in_(kinds), W.c.entity == entity)
                               .limit(1)).first() is None
    existing = {} if none_yet else _existing(session, entity, kinds, ext_ids)
    new, redetected, changed = [], [], []
    for key, f in found.items():
        values = dict(case_id=f.case_id, case_ref=f.case_ref, source=f.source[:500], record=f.record[:40],
                      message=f.message)
        row = existing.get(key)
        if row is None:
            new.append(dict(kind=f.kind, entity=f.entity, record_ext_id=f.record_ext_id, field=f.field,
                            detected_at=now, resolved_at=None, **values))
        elif row.resolved_at is not None:
            redetected.append(dict(_id=row.id, detected_at=now, resolved_at=None, **values))
        elif (row.case_id, row.case_ref, row.source, row.record, row.message) != tuple(values.values()):
            changed.append(dict(_id=row.id, **values))
    gone = [row for key, row in existing.items() if key not in found and row.resolved_at is None
            and (row.field != _SUPPORT or row.record_ext_id not in unflagged)]
    if gone:  # only a record whose row is stored was checked
        t = DataQualityWarning.metadata.tables[_TABLES[entity]]
        stored = {ext_id for (ext_id,) in Lookups(session).rows(
            t.c.ext_id, (t.c.ext_id,), sorted({row.record_ext_id for row in gone}))}
        gone = [row for row in gone if row.record_ext_id in stored]
    dialect = session.get_bind().dialect.name
    if new:
        session.execute(insert(W), new)  # the driver's executemany (psycopg: pipelined)
    by_id = update(W).where(W.c.id == bindparam("_id"))
    for rows in (redetected, changed):
        if rows:
            session.execute(by_id, rows)
    if gone:
        session.execute(update(W).where(among(W.c.id, dialect)).values(resolved_at=now),
                        keys_param(sorted(row.id for row in gone), dialect))
    session.flush()


def _existing(session: Session, entity: str, kinds: list[str],
              ext_ids: Sequence[str]) -> dict[tuple[str, str, str, str], Any]:
    """The stored warnings (kind, entity, ext_id, field) → row of these records that their
    checks can show (``CHECKS``)."""
    W = DataQualityWarning.__table__
    dialect = session.get_bind().dialect.name
    rows, among_keys = keyed(W, W.c.record_ext_id, dialect)
    stmt = (sa_select(W.c.id, W.c.kind, W.c.entity, W.c.record_ext_id, W.c.field, W.c.case_id,
                      W.c.case_ref, W.c.source, W.c.record, W.c.message, W.c.resolved_at)
            .select_from(rows).where(*among_keys, W.c.kind.in_(kinds), W.c.entity == entity))
    return {(row.kind, row.entity, row.record_ext_id, row.field): row
            for row in session.execute(stmt, keys_param(ext_ids, dialect)) if (row.kind, row.field) in CHECKS[entity]}
