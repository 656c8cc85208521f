"""Stage 1 intake, data quality: each check a statement, so only the offending rows are read.

Every check compares two instants of a stored row, or of a row and its measure; the database
compares them, and only the rows that show an implausible fact come back to Python (to be named
and given their message). On PostgreSQL the instants are ``timestamptz``; on SQLite they are
SQLAlchemy's fixed-width naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``), whose order is the
instants' order (the service compares instants in SQL that way everywhere, e.g. ``Deadline.due <=
now``). A NULL compares as nothing, as ``x is not None and x < y`` did in Python.

``offending(session, entity, ext_ids)`` gives, for the stored rows of ``ext_ids``, one
``(ext_id, kind, field, case_id, message)`` per finding. I/O: reads only, in the session given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import String, bindparam, false, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from watchdog.clock import format_local
from watchdog.intake.lookup import KEYS, among, keys_param

#: What ``offending`` gives per finding: (ext_id, kind, field, case_id, message).
Raw = tuple[str, str, str, int | None, str]

_statements: dict[tuple[str, str], Any] = {}


def _d(instant) -> str:
    return format_local(instant)


def _statement(name: str, dialect: str):
    stmt = _statements.get((name, dialect))
    if stmt is None:
        stmt = _statements[(name, dialect)] = _BUILD[name](dialect)
    return stmt


class _Keys:
    """The bound keys of one check's statements, made once for all of them (JSON text on SQLite)."""

    def __init__(self, session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self._made: tuple[Sequence[str], dict] | None = None

    def rows(self, name: str, keys: Sequence[str]) -> list:
        if not keys:
            return []
        if self._made is None or self._made[0] is not keys:
            self._made = (keys, keys_param(keys, self.dialect))
        return self.session.execute(_statement(name, self.dialect), self._made[1]).all()


# -- the statements ------------------------------------------------------------------------
# Each reads the rows of one table whose ``ext_id`` is among the bound keys (``intake.lookup``),
# then follows the references' indexes. On PostgreSQL it drives from ``unnest`` of the array:
# with ``ext_id = ANY(:keys)`` in a join, the generic plan of the prepared statement (psycopg
# prepares one after its fifth execution) scanned whole tables, 50x slower. On SQLite
# ``ext_id IN (SELECT value FROM json_each(:keys))`` probes the index once per key.

def _tables():
    from watchdog.casestore import FollowUp, Investigation, Measure, Notification

    return Notification.__table__, Investigation.__table__, Measure.__table__, FollowUp.__table__


def keyed(table, column, dialect: str) -> tuple[Any, tuple]:
    """The FROM clause and the conditions for "the rows of ``table`` whose ``column`` is among
    the bound keys" (the parameters: ``intake.lookup.keys_param``)."""
    if dialect == "postgresql":
        k = func.unnest(bindparam(KEYS, type_=ARRAY(String()))).table_valued("value").render_derived(name="k")
        return k.join(table, column == k.c.value), ()
    return table, (among(column, dialect),)


def _assessed(dialect: str):
    n = _tables()[0]
    rows, among_keys = keyed(n, n.c.ext_id, dialect)
    return (select(n.c.ext_id, n.c.case_id, n.c.received_at, n.c.assessed_at).select_from(rows)
            .where(*among_keys, n.c.assessed_at < n.c.received_at))


def _support(dialect: str):
    """Notifications flagged ``child_in_support = nej`` with every measure of their case that was
    effected and not ended at the receipt and brings the reassessment duty (``running_measure``)."""
    from watchdog.rules.notifications import REASSESSMENT_MEASURES

    n, _i, m, _f = _tables()
    rows, among_keys = keyed(n, n.c.ext_id, dialect)
    return (select(n.c.ext_id, n.c.case_id, n.c.received_at, m.c.id, m.c.kind, m.c.effected_at)
            .select_from(rows.join(m, m.c.case_id == n.c.case_id))
            .where(*among_keys, n.c.child_in_support == false(), m.c.kind.in_(REASSESSMENT_MEASURES),
                   m.c.effected_at <= n.c.received_at,
                   or_(m.c.ended_at.is_(None), m.c.ended_at > n.c.received_at)))


def _completed(dialect: str):
    i = _tables()[1]
    rows, among_keys = keyed(i, i.c.ext_id, dialect)
    return (select(i.c.ext_id, i.c.case_id, i.c.aware_at, i.c.completed_at).select_from(rows)
            .where(*among_keys, i.c.completed_at < i.c.aware_at))


def _effected(dialect: str):
    m = _tables()[2]
    rows, among_keys = keyed(m, m.c.ext_id, dialect)
    return (select(m.c.ext_id, m.c.case_id, m.c.decided_at, m.c.effected_at).select_from(rows)
            .where(*among_keys, m.c.effected_at < m.c.decided_at))


def _early(dialect: str):
    """Measures with the follow-ups performed before their effect, one row per follow-up."""
    _n, _i, m, f = _tables()
    rows, among_keys = keyed(m, m.c.ext_id, dialect)
    return (select(m.c.ext_id, m.c.case_id, m.c.effected_at, f.c.ext_id.label("follow_up"))
            .select_from(rows.join(f, f.c.measure_id == m.c.id))
            .where(*among_keys, f.c.performed_at < m.c.effected_at))


def _performed(dialect: str):
    """Follow-ups performed before their measure took effect, with the measure's case."""
    _n, _i, m, f = _tables()
    rows, among_keys = keyed(f, f.c.ext_id, dialect)
    return (select(f.c.ext_id, f.c.performed_at, m.c.case_id, m.c.effected_at)
            .select_from(rows.join(m, m.c.id == f.c.measure_id))
            .where(*among_keys, f.c.performed_at < m.c.effected_at))


_BUILD: dict[str, Callable[[str], Any]] = {
    "assessed": _assessed, "support": _support, "completed": _completed, "effected": _effected,
    "early": _early, "performed": _performed,
}


# -- the checks ----------------------------------------------------------------------------

def offending(session, entity: str, ext_ids: Sequence[str], *, support: Sequence[str] = ()) -> list[Raw]:
    """The findings of the stored rows of ``entity`` among ``ext_ids``, in no particular order.
    ``support``: the notifications among them whose record gives ``child_in_support`` (only
    those are checked against the case's measures)."""
    out: list[Raw] = []
    keys = _Keys(session)
    _rows = keys.rows
    if entity == "notifications":
        for ext_id, case_id, received, assessed in _rows("assessed", ext_ids):
            out.append((ext_id, "assessed_before_receipt", "assessed_at", case_id,
                        f"Underretningen er vurderet {_d(assessed)} før den blev modtaget "
                        f"{_d(received)}: 24-timers vurderingen tæller som overholdt."[:500]))
        running: dict[str, tuple] = {}  # per notification: the earliest-effected running measure
        for row in _rows("support", support):
            ext_id, _case, _received, measure_id, _kind, effected = row
            best = running.get(ext_id)
            if best is None or (effected, measure_id) < (best[5], best[3]):
                running[ext_id] = row
        for ext_id, case_id, received, _id, kind, effected in running.values():
            out.append((ext_id, "support_flag_contradicts_measure", "child_in_support", case_id,
                        f"child_in_support = nej, men sagen har en foranstaltning ({kind.value}) "
                        f"iværksat {_d(effected)} og ikke afsluttet ved modtagelsen "
                        f"{_d(received)}: genvurderingspligten (BL § 137 / SEL § 155 a) gælder, "
                        "foranstaltningen vejer tungest."[:500]))
    elif entity == "investigations":
        for ext_id, case_id, aware, completed in _rows("completed", ext_ids):
            out.append((ext_id, "completed_before_awareness", "completed_at", case_id,
                        f"Undersøgelsen er afsluttet {_d(completed)} før kommunen blev "
                        f"opmærksom {_d(aware)}: 4-måneders fristen tæller som overholdt."[:500]))
    elif entity == "measures":
        for ext_id, case_id, decided, effected in _rows("effected", ext_ids):
            out.append((ext_id, "effected_before_decision", "effected_at", case_id,
                        f"Foranstaltningen er iværksat {_d(effected)} før afgørelsen "
                        f"{_d(decided)}: opfølgningsfristen regnes fra iværksættelsen."[:500]))
        early: dict[str, tuple[int, Any, list[str]]] = {}
        for ext_id, case_id, effected, follow_up in _rows("early", ext_ids):
            early.setdefault(ext_id, (case_id, effected, []))[2].append(follow_up)
        for ext_id, (case_id, effected, follow_ups) in early.items():
            out.append((ext_id, "follow_up_before_effect", "effected_at", case_id,
                        f"Iværksættelsen {_d(effected)} ligger efter opfølgning(er) "
                        f"{', '.join(sorted(follow_ups))}: opfølgningerne tæller ikke med i fristen."[:500]))
    elif entity == "follow_ups":
        for ext_id, performed, case_id, effected in _rows("performed", ext_ids):
            out.append((ext_id, "follow_up_before_effect", "performed_at", case_id,
                        f"Opfølgningen er foretaget {_d(performed)} før foranstaltningen blev iværksat "
                        f"{_d(effected)}: den tæller ikke med i fristen."[:500]))
    return out
