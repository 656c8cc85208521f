"""Stage 1 intake, sources: what each source has read, as rows (so replicas and restarts agree).

I/O: the database (tables ``source_state``, ``source_batch``, ``drop_file_seen``). ``now`` comes in.

- ``source_state``: one row per configured source — its last successful read, the rows read, the
  batches imported and refused, the last error, the watermarks of a SQL source and the time of
  its last full re-read, and a lease (``claimed_by``/``claimed_until``) so that only one replica
  reads a SQL source at a time.
- ``source_batch``: one row per batch of the drop folder, unique by (source, content hash): the
  replica that inserts it imports it; the same content dropped again finds the row and changes
  nothing. A claim left by a crashed replica expires and is taken again (the import is an
  idempotent upsert, so a second run of a half-finished batch is safe).
- ``drop_file_seen``: the size and mtime each file had when first seen so; a file is complete once
  they stayed the same for one polling interval (network shares give no file events).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, UniqueConstraint, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from watchdog.clock import ensure_aware


class SourceState(SQLModel, table=True):
    __tablename__ = "source_state"
    name: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=20)  # drop_folder | sql
    created_at: datetime
    last_attempt_at: datetime | None = None
    last_ok_at: datetime | None = None  # the last successful read
    last_batch_at: datetime | None = None  # the last batch imported
    rows_read: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    batches_ok: int = 0
    batches_refused: int = 0
    last_error: str | None = Field(default=None, max_length=2000)
    refused_since: datetime | None = None  # a refusal streak gets one ops alert
    watermarks: str | None = None  # JSON: entity -> {"type": ..., "value": ...}
    last_full_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = None


class SourceBatch(SQLModel, table=True):
    __tablename__ = "source_batch"
    __table_args__ = (UniqueConstraint("source", "content_hash", name="uq_source_batch_content"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=200)
    content_hash: str = Field(max_length=64)
    state: str = Field(max_length=20)  # claimed | imported | failed
    claimed_by: str = Field(max_length=200)
    claimed_until: datetime
    created_at: datetime
    finished_at: datetime | None = None
    files: str = ""  # JSON list of file names
    rows: int = 0
    receipt: str | None = None  # JSON


class DropFileSeen(SQLModel, table=True):
    __tablename__ = "drop_file_seen"
    source: str = Field(primary_key=True, max_length=200)
    path: str = Field(primary_key=True, max_length=1000)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    mtime_ns: int = Field(sa_column=Column(BigInteger, nullable=False))  # nanoseconds: beyond 32 bits
    seen_at: datetime  # first seen with this size and mtime


# --- source state ---------------------------------------------------------------------------

def get_state(session: Session, name: str, kind: str, *, now: datetime) -> SourceState:
    """The source's row, created on first use (the caller commits)."""
    row = session.get(SourceState, name)
    if row is None:
        row = SourceState(name=name, kind=kind, created_at=ensure_aware(now, what="now"))
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # another replica created it at the same moment
            session.rollback()
            row = session.get(SourceState, name)
    return row


def all_states(session: Session) -> dict[str, SourceState]:
    return {row.name: row for row in session.exec(select(SourceState).order_by(SourceState.name))}


def claim_source(session: Session, name: str, *, replica: str, now: datetime, seconds: int) -> bool:
    """Take the source's lease (a conditional UPDATE: trust the row count). Commits."""
    result = session.execute(update(SourceState).where(
        SourceState.name == name,
        or_(SourceState.claimed_until.is_(None), SourceState.claimed_until < now,
            SourceState.claimed_by == replica),
    ).values(claimed_by=replica, claimed_until=now + timedelta(seconds=seconds)))
    session.commit()
    return result.rowcount == 1


def release_source(session: Session, name: str, *, replica: str) -> None:
    session.execute(update(SourceState).where(SourceState.name == name, SourceState.claimed_by == replica)
                    .values(claimed_by=None, claimed_until=None))
    session.commit()


def watermarks_of(row: SourceState) -> dict[str, Any]:
    return json.loads(row.watermarks) if row.watermarks else {}


def record_read(session: Session, name: str, *, now: datetime, rows: int, batch: bool,
                watermarks: dict[str, Any] | None = None, full: bool = False) -> None:
    """A read that succeeded: ``batch`` if a batch was imported (not only looked for)."""
    row = session.get(SourceState, name)
    row.last_attempt_at = row.last_ok_at = now
    row.rows_read += rows
    row.last_error = None
    row.refused_since = None
    if batch:
        row.batches_ok += 1
        row.last_batch_at = now
    if watermarks is not None:
        row.watermarks = json.dumps(watermarks, sort_keys=True)
    if full:
        row.last_full_at = now


def record_refused(session: Session, name: str, *, now: datetime, error: str) -> datetime:
    """A batch refused; returns the start of the refusal streak (the ops alert's key)."""
    row = session.get(SourceState, name)
    row.last_attempt_at = now
    row.batches_refused += 1
    row.last_error = error[:2000]
    if row.refused_since is None:
        row.refused_since = now
    return ensure_aware(row.refused_since, what="refused_since")


def record_error(session: Session, name: str, *, now: datetime, error: str) -> None:
    """The source could not be read at all (unreachable, a broken query): not a refused batch."""
    row = session.get(SourceState, name)
    row.last_attempt_at = now
    row.last_error = error[:2000]


# --- drop folder batches ---------------------------------------------------------------------

def claim_batch(session: Session, source: str, content_hash: str, *, replica: str, now: datetime,
                seconds: int, files: list[str]) -> tuple[str, SourceBatch | None]:
    """Claim the batch with this content for ``replica``. Commits.

    Returns ("claimed", row) when this replica is to import it; ("imported", row) when the same
    content was imported before; ("busy", row) while another replica holds it.
    A failed batch may be claimed again (the same files, dropped again after the cause was fixed).
    """
    until = now + timedelta(seconds=seconds)
    row = SourceBatch(source=source, content_hash=content_hash, state="claimed", claimed_by=replica,
                      claimed_until=until, created_at=now, files=json.dumps(files))
    session.add(row)
    try:
        session.commit()
        return "claimed", row
    except IntegrityError:
        session.rollback()
    existing = session.exec(select(SourceBatch).where(SourceBatch.source == source,
                                                      SourceBatch.content_hash == content_hash)).one()
    if existing.state == "imported":
        return "imported", existing
    taken = session.execute(update(SourceBatch).where(
        SourceBatch.id == existing.id,
        or_(SourceBatch.state == "failed", SourceBatch.claimed_until < now),
    ).values(state="claimed", claimed_by=replica, claimed_until=until, files=json.dumps(files)))
    session.commit()
    if taken.rowcount == 1:
        session.refresh(existing)
        return "claimed", existing
    return "busy", existing


def finish_batch(session: Session, batch_id: int, *, state: str, now: datetime, rows: int,
                 receipt: dict[str, Any]) -> None:
    row = session.get(SourceBatch, batch_id)
    row.state = state
    row.finished_at = now
    row.rows = rows
    row.receipt = json.dumps(receipt, ensure_ascii=False, default=str)


def observe_file(session: Session, source: str, path: str, *, size: int, mtime_ns: int, now: datetime) -> datetime:
    """Record a listing of one file; returns since when it has had this size and mtime."""
    row = session.get(DropFileSeen, (source, path))
    if row is None:
        session.add(DropFileSeen(source=source, path=path, size=size, mtime_ns=mtime_ns, seen_at=now))
        return now
    if row.size != size or row.mtime_ns != mtime_ns:
        row.size, row.mtime_ns, row.seen_at = size, mtime_ns, now
        return now
    return ensure_aware(row.seen_at, what="seen_at")


def forget_files(session: Session, source: str, paths: list[str]) -> None:
    for path in paths:
        row = session.get(DropFileSeen, (source, path))
        if row is not None:
            session.delete(row)
