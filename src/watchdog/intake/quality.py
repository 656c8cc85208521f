"""Stage 1 intake, data quality: facts that are legal to store but implausible, each a warning.

Each one can make a deadline wrong (a follow-up counted from an effect that came before the
decision, a 24-hour assessment "met" before the underretning arrived), so the import stores them,
names them with file, row and field like a refused record, and ``watchdog report data-quality``
lists them. They refuse nothing: the case system is the source of truth, and the deadline is
still computed from what it says.

I/O: reads the case store and writes ``data_quality_warning`` in the import's own transaction
(``check_imported``, called where the validated records are upserted). The checks themselves
(``KINDS``) are plain comparisons of instants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel, select

from watchdog.clock import ensure_aware, format_local
from watchdog.intake.lookup import Lookups


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


def _d(instant: datetime) -> str:
    return format_local(instant)


# The columns the checks read, by entity (and by table name where rows are grouped).
_READ = {
    "notifications": ("id", "ext_id", "case_id", "received_at", "assessed_at", "child_in_support"),
    "investigations": ("ext_id", "case_id", "aware_at", "completed_at"),
    "measures": ("id", "ext_id", "case_id", "kind", "decided_at", "legal_basis", "effected_at", "ended_at"),
    "follow_ups": ("ext_id", "measure_id", "performed_at"),
}
_READ.update({"measure": _READ["measures"], "follow_up": _READ["follow_ups"]})


def check_imported(session: Session, records: Sequence, *, now: datetime) -> list[Finding]:
    """Check the imported records against the store (already upserted, same transaction); store
    new warnings, resolve those a record no longer shows. Returns this import's findings.

    ``records`` need ``spec``, ``ext_id``, ``source``, ``record`` and ``given`` (``upsert.ValidRecord``
    or the lighter ``writing.Imported``); the rows are read as plain rows (Core), not ORM objects."""
    from watchdog.casestore import Case, FollowUp, Investigation, Measure, Notification
    from watchdog.rules.facts import CaseFacts, MeasureFacts, NotificationFacts
    from watchdog.rules.notifications import running_measure

    now = ensure_aware(now, what="now")
    by_entity: dict[str, list] = {}
    for rec in records:
        by_entity.setdefault(rec.spec.name, []).append(rec)
    findings: list[Finding] = []
    checked: list[tuple[str, str, str, str]] = []  # (kind, entity, ext_id, field) looked at
    lookups = Lookups(session)

    def look(rec, kind: str, field: str, case_id: int | None, bad: bool, message) -> None:
        """``message``: a function that writes it (only a finding needs one)."""
        checked.append((kind, rec.spec.name, rec.ext_id, field))
        if bad:
            findings.append(Finding(kind, rec.spec.name, rec.ext_id, field, case_id, None,
                                    rec.source, str(rec.record), message()[:500]))

    def imported(entity: str, table):
        """(record, its stored row: the columns the checks read) for the imported records of ``entity``."""
        recs = by_entity.get(entity, [])
        t = table.__table__
        found = {row.ext_id: row for row in lookups.rows(t.c.ext_id, tuple(t.c[c] for c in _READ[entity]),
                                                         [r.ext_id for r in recs])}
        return [(rec, found[rec.ext_id]) for rec in recs if rec.ext_id in found]

    def grouped(column, values) -> dict:
        """Rows whose ``column`` is among ``values``, grouped by it: one query per 500 values."""
        table = column.class_.__table__
        out: dict = {}
        for row in lookups.rows(table.c[column.key], tuple(table.c[c] for c in _READ[table.name]), sorted(set(values))):
            out.setdefault(getattr(row, column.key), []).append(row)
        return out

    notifications = imported("notifications", Notification)
    flagged = [n.case_id for rec, n in notifications if "child_in_support" in rec.given and not n.child_in_support]
    case_measures = grouped(Measure.case_id, flagged)
    for rec, n in notifications:
        look(rec, "assessed_before_receipt", "assessed_at", n.case_id,
             n.assessed_at is not None and n.assessed_at < n.received_at,
             lambda: f"Underretningen er vurderet {_d(n.assessed_at) if n.assessed_at else ''} før den blev modtaget "
             f"{_d(n.received_at)}: 24-timers vurderingen tæller som overholdt.")
        if "child_in_support" in rec.given:
            running = None
            if not n.child_in_support:
                measures = tuple(
                    MeasureFacts(m.id, m.kind, m.decided_at, m.legal_basis or "", m.effected_at, m.ended_at)
                    for m in case_measures.get(n.case_id, ()))
                running = running_measure(CaseFacts(n.case_id, n.received_at, measures=measures),
                                          NotificationFacts(n.id, n.received_at))
            look(rec, "support_flag_contradicts_measure", "child_in_support", n.case_id, running is not None,
                 lambda: f"child_in_support = nej, men sagen har en foranstaltning ({running.kind.value if running else ''}) "
                 f"iværksat {_d(running.effected_at) if running else ''} og ikke afsluttet ved modtagelsen "
                 f"{_d(n.received_at)}: genvurderingspligten (BL § 137 / SEL § 155 a) gælder, foranstaltningen "
                 "vejer tungest.")

    for rec, inv in imported("investigations", Investigation):
        look(rec, "completed_before_awareness", "completed_at", inv.case_id,
             inv.completed_at is not None and inv.completed_at < inv.aware_at,
             lambda: f"Undersøgelsen er afsluttet {_d(inv.completed_at) if inv.completed_at else ''} før kommunen blev "
             f"opmærksom {_d(inv.aware_at)}: 4-måneders fristen tæller som overholdt.")

    measures = imported("measures", Measure)
    measure_follow_ups = grouped(FollowUp.measure_id, [m.id for _, m in measures])
    for rec, m in measures:
        look(rec, "effected_before_decision", "effected_at", m.case_id,
             m.effected_at is not None and m.effected_at < m.decided_at,
             lambda: f"Foranstaltningen er iværksat {_d(m.effected_at) if m.effected_at else ''} før afgørelsen "
             f"{_d(m.decided_at)}: opfølgningsfristen regnes fra iværksættelsen.")
        early = [] if m.effected_at is None else sorted(
            (f for f in measure_follow_ups.get(m.id, ()) if f.performed_at < m.effected_at), key=lambda f: f.ext_id)
        look(rec, "follow_up_before_effect", "effected_at", m.case_id, bool(early),
             lambda: f"Iværksættelsen {_d(m.effected_at) if m.effected_at else ''} ligger efter opfølgning(er) "
             f"{', '.join(f.ext_id for f in early)}: opfølgningerne tæller ikke med i fristen.")

    follow_ups = imported("follow_ups", FollowUp)
    of_follow_ups = {m.id: m for rows in grouped(Measure.id, [f.measure_id for _, f in follow_ups]).values()
                     for m in rows}
    for rec, f in follow_ups:
        m = of_follow_ups.get(f.measure_id)
        look(rec, "follow_up_before_effect", "performed_at", m.case_id if m else None,
             m is not None and m.effected_at is not None and f.performed_at < m.effected_at,
             lambda: f"Opfølgningen er foretaget {_d(f.performed_at)} før foranstaltningen blev iværksat "
             f"{_d(m.effected_at) if m is not None and m.effected_at else ''}: den tæller ikke med i fristen.")

    # Each finding's case reference, read for all of them at once.
    C = Case.__table__
    case_refs = lookups.mapping(C.c.id, C.c.ext_id, sorted({f.case_id for f in findings if f.case_id is not None}))
    findings = [replace(f, case_ref=case_refs[f.case_id]) if f.case_id is not None else f for f in findings]
    _store(session, findings, checked, now)
    return findings


def _store(session: Session, findings: list[Finding], checked: list[tuple[str, str, str, str]], now: datetime) -> None:
    W = DataQualityWarning
    found = {(f.kind, f.entity, f.record_ext_id, f.field): f for f in findings}
    # None stored for these entities yet (the first import): nothing to look up or resolve.
    entities = sorted({c[1] for c in checked})
    none_yet = session.execute(sa_select(W.id).where(W.entity.in_(entities)).limit(1)).first() is None
    ext_ids = [] if none_yet else sorted({c[2] for c in checked})
    existing = {}
    for start in range(0, len(ext_ids), 500):
        for row in session.exec(select(W).where(W.record_ext_id.in_(ext_ids[start:start + 500]))):
            existing[(row.kind, row.entity, row.record_ext_id, row.field)] = row
    for key in checked:
        row, finding = existing.get(key), found.get(key)
        if finding is not None:
            values = dict(case_id=finding.case_id, case_ref=finding.case_ref, source=finding.source[:500],
                          record=finding.record[:40], message=finding.message, resolved_at=None)
            if row is None:
                session.add(W(kind=finding.kind, entity=finding.entity, record_ext_id=finding.record_ext_id,
                              field=finding.field, detected_at=now, **values))
            else:
                if row.resolved_at is not None:
                    row.detected_at = now
                for k, v in values.items():
                    setattr(row, k, v)
        elif row is not None and row.resolved_at is None:
            row.resolved_at = now
    session.flush()
