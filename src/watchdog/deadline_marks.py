"""Stage 2, deadlines: which cases wait for a recompute, and which cannot be computed.

I/O: the database (``case_file``'s dirty mark, ``recompute_failure``). Functions take the session
and never commit.

**Dirty marks.** Whoever changes a case's facts sets ``Case.dirty`` and adds one to
``Case.facts_version`` in the same transaction (``mark_changed``; a new case starts dirty). The
poll recomputes the dirty cases and clears each mark only if the version is still the one read
*before* the facts were loaded (``read_dirty_versions``, then ``clear``). So a transaction that
commits late (a long import) is seen by the next poll whatever the clock said when it began, a
change that lands while a recompute runs keeps its case dirty, and a recompute that dies clears
nothing: the next poll does the work. A time watermark could do none of that.

**Failures.** A case whose rules raise (a fact in year 9999 that overflows the date arithmetic) is
left out of its batch, keeps its dirty mark (so every later poll tries it again) and gets a
``recompute_failure`` row: first and last failure, attempts, the exception. ``watchdog health``
and the metrics show these rows; the poll sends an operator alert once per row. The row goes away
when the case computes again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlmodel import Field, Session, SQLModel

from watchdog.db import dialect_insert

log = logging.getLogger(__name__)

_CHUNK = 500


RECOMPUTE = "recompute"  # the case's rules raised
PLANNING = "planning"  # planning the alerts of one of its deadlines raised


class RecomputeFailure(SQLModel, table=True):
    """A case whose deadlines could not be computed (its rules raised) or planned."""

    __tablename__ = "recompute_failure"
    case_id: int = Field(primary_key=True, foreign_key="case_file.id")
    stage: str = Field(default=RECOMPUTE, max_length=20, sa_column_kwargs={"server_default": RECOMPUTE})
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int = 1
    error: str = Field(max_length=2000)
    alerted_at: datetime | None = None  # when the operators were told (once per failure)


# --- dirty marks ------------------------------------------------------------------------------

def mark_changed(session: Session, case_ids: Iterable[int], *, now: datetime,
                 changes: Mapping[int, Mapping[str, Any]] | None = None) -> None:
    """The facts of these cases changed in this transaction: stamp them and mark them dirty.

    ``changes``: new column values of some of these cases, written in the same step. Rows are
    locked in ascending id order (on PostgreSQL explicitly: an ``UPDATE … IN`` may visit them in
    any order), the order every writer of case rows keeps, so writers wait for each other instead
    of deadlocking; ``facts_version + 1`` is computed in SQL, so two writers' bumps both count."""
    from watchdog.casestore import Case

    changes = changes or {}
    ids = sorted(set(case_ids) | set(changes))
    mark = {"facts_changed_at": now, "dirty": True, "facts_version": Case.facts_version + 1}
    lock_first = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        if lock_first:
            session.execute(select(Case.id).where(Case.id.in_(chunk)).order_by(Case.id)
                            .with_for_update(key_share=True))  # FOR NO KEY UPDATE, in id order
        plain = [case_id for case_id in chunk if case_id not in changes]
        if plain:
            session.execute(update(Case).where(Case.id.in_(plain)).values(**mark)
                            .execution_options(synchronize_session=False))
        for case_id in chunk:
            if case_id in changes:
                session.execute(update(Case).where(Case.id == case_id).values(**changes[case_id], **mark)
                                .execution_options(synchronize_session=False))


def dirty_case_ids(session: Session, *, after: int, limit: int) -> list[int]:
    """Up to ``limit`` dirty cases with an id above ``after``, in id order (an index range)."""
    from watchdog.casestore import Case

    return list(session.execute(select(Case.id).where(Case.dirty == True, Case.id > after)  # noqa: E712
                                .order_by(Case.id).limit(limit)).scalars())


def read_dirty_versions(session: Session, case_ids: Sequence[int], *, whole_range: bool = False) -> dict[int, int]:
    """``{case id: facts_version}`` of the dirty cases among ``case_ids``. Read this *before*
    loading the facts: a version read after them could belong to facts not loaded."""
    from watchdog.casestore import Case

    if not case_ids:
        return {}
    among = (Case.id.between(case_ids[0], case_ids[-1]) if whole_range else Case.id.in_(list(case_ids)))
    return dict(session.execute(select(Case.id, Case.facts_version)
                                .where(among, Case.dirty == True)).all())  # noqa: E712


def clear(session: Session, versions: Mapping[int, int]) -> int:
    """Clear the dirty marks of recomputed cases whose version is still the one read. Returns how
    many were cleared (a case changed meanwhile stays dirty for the next poll).

    On PostgreSQL the rows are first locked in id order with SKIP LOCKED: a case row locked right
    now belongs to a writer that is changing the case (its mark will stay set), so the recompute
    neither waits for a long import nor takes locks out of the writers' order."""
    from watchdog.casestore import Case

    if not versions:
        return 0
    pairs = sorted(versions.items())
    if session.get_bind().dialect.name == "postgresql":
        free = set(session.execute(select(Case.id).where(Case.id.in_([c for c, _v in pairs]), Case.dirty == True)  # noqa: E712
                                   .order_by(Case.id).with_for_update(key_share=True, skip_locked=True)).scalars())
        pairs = [(c, v) for c, v in pairs if c in free]
        if not pairs:
            return 0
    # One UPDATE per version read (after an import nearly every case has the same one), each an
    # id IN list: a (id, version) tuple IN list of 2,000 pairs was planned on PostgreSQL as a
    # filter tried on every row, a third of a first computation there.
    by_version: dict[int, list[int]] = {}
    for case_id, version in pairs:
        by_version.setdefault(version, []).append(case_id)
    cleared = 0
    for version, ids in sorted(by_version.items()):
        result = session.execute(update(Case).where(Case.id.in_(ids), Case.facts_version == version,
                                                    Case.dirty == True)  # noqa: E712
                                 .values(dirty=False).execution_options(synchronize_session=False))
        cleared += result.rowcount or 0
    return cleared


def count_dirty(session: Session) -> int:
    from watchdog.casestore import Case

    return session.execute(select(func.count()).select_from(Case).where(Case.dirty == True)).scalar_one()  # noqa: E712


# --- failures ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureView:
    case_id: int
    case_ref: str
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int
    error: str
    alerted_at: datetime | None


def describe(exc: BaseException) -> str:
    """The exception in one line: its type and the first line of its text."""
    text = str(exc).strip()
    return (f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__)[:2000]


def any_failures(session: Session, *, stage: str = RECOMPUTE) -> bool:
    return session.execute(select(RecomputeFailure.case_id).where(RecomputeFailure.stage == stage)
                           .limit(1)).first() is not None


def record_failures(session: Session, failures: Mapping[int, BaseException], *, now: datetime,
                    stage: str = RECOMPUTE) -> None:
    """Log each failed case with its reference and the exception, and keep a row for it."""
    from watchdog.casestore import Case

    if not failures:
        return
    ids = sorted(failures)
    refs = dict(session.execute(select(Case.id, Case.ext_id).where(Case.id.in_(ids))).all())
    known = {row.case_id: row for row in session.execute(
        select(RecomputeFailure.case_id, RecomputeFailure.attempts).where(RecomputeFailure.case_id.in_(ids)))}
    insert = dialect_insert(session)
    for case_id in ids:
        exc = failures[case_id]
        error = describe(exc)
        ref = refs.get(case_id, f"id {case_id}")
        if case_id in known:
            # Every poll tries again: one line each time, the traceback only the first time.
            log.warning("deadlines of case %s still cannot be computed (attempt %d): %s", ref,
                        known[case_id].attempts + 1, error, extra={"case_ref": ref})
        else:
            log.error("deadlines of case %s cannot be computed; the other cases go on, this one is "
                      "tried again on every poll: %s", ref, error, exc_info=exc, extra={"case_ref": ref})
        # An upsert: two replicas may record the same failing case at once.
        stmt = insert(RecomputeFailure).values(case_id=case_id, stage=stage, first_failed_at=now,
                                               last_failed_at=now, attempts=1, error=error)
        session.execute(stmt.on_conflict_do_update(index_elements=["case_id"], set_={
            "stage": stage, "last_failed_at": now, "attempts": RecomputeFailure.attempts + 1, "error": error}))


def forget_failures(session: Session, case_ids: Iterable[int], *, stage: str = RECOMPUTE) -> int:
    """These cases computed (or were planned): their failure rows of that stage go. Returns how
    many went. (A planning failure stays while the case recomputes fine: else every recompute
    would make it new, and the operators would be told again.)"""
    ids = sorted(set(case_ids))
    gone = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        result = session.execute(delete(RecomputeFailure).where(RecomputeFailure.case_id.in_(chunk),
                                                                RecomputeFailure.stage == stage))
        gone += result.rowcount or 0
    if gone:
        log.info("%d case(s) whose %s failed before went through again", gone, stage)
    return gone


def list_failures(session: Session, *, unalerted_only: bool = False, limit: int | None = None) -> list[FailureView]:
    """The failing cases, oldest failure first."""
    from watchdog.casestore import Case

    query = (select(RecomputeFailure, Case.ext_id).join(Case, Case.id == RecomputeFailure.case_id)
             .order_by(RecomputeFailure.first_failed_at, RecomputeFailure.case_id))
    if unalerted_only:
        query = query.where(RecomputeFailure.alerted_at.is_(None))
    if limit:
        query = query.limit(limit)
    return [FailureView(f.case_id, ref, f.first_failed_at, f.last_failed_at, f.attempts, f.error, f.alerted_at)
            for f, ref in session.execute(query)]


def count_failures(session: Session) -> int:
    return session.execute(select(func.count()).select_from(RecomputeFailure)).scalar_one()


def mark_alerted(session: Session, case_ids: Iterable[int], *, now: datetime) -> None:
    ids = sorted(set(case_ids))
    if ids:
        session.execute(update(RecomputeFailure).where(RecomputeFailure.case_id.in_(ids)).values(alerted_at=now))
