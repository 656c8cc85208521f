"""Who saw what: every page view of case data, with the case references it showed. I/O: database.

A municipality must be able to say who looked at a child's case, so each view is a row
(``access_log``: who, when, which page and address) with one ``access_log_case`` row per case
reference shown. Rows are never pruned: they are kept as long as the outcome log (for ever).
Readable and exportable (CSV) by admins on the *Adgangslog* page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Field, Session, SQLModel, select

from watchdog.clock import ensure_aware


class AccessLog(SQLModel, table=True):
    """One page view (or download) of case data."""

    __tablename__ = "access_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    worker_id: int = Field(foreign_key="worker.id", index=True)
    worker_ext_id: str = Field(max_length=64)  # kept as text: the log outlives a renamed worker row
    page: str = Field(max_length=40)  # "frister", "sag", "team", "drift", …
    path: str = Field(max_length=1000)  # the address with its query, e.g. /frister?pligt=plan
    cases: int = 0  # how many case references the view showed


class AccessLogCase(SQLModel, table=True):
    """A case reference shown by one view: ``WHERE case_ref = ?`` answers "who saw this case"."""

    __tablename__ = "access_log_case"
    id: int | None = Field(default=None, primary_key=True)
    access_id: int = Field(foreign_key="access_log.id", index=True)
    case_ref: str = Field(max_length=64, index=True)


def record_view(session: Session, *, worker_id: int, worker_ext_id: str, page: str, path: str,
                case_refs: Iterable[str], now: datetime) -> int:
    """Write one view and its case references (the caller commits); returns the view's id."""
    refs = list(dict.fromkeys(case_refs))  # once each, in the order shown
    # Core inserts (the view, then its references in one executemany): the ORM's unit of work
    # cost more than both statements on every page view.
    view_id = session.execute(insert(AccessLog).returning(AccessLog.id), {
        "at": ensure_aware(now, what="now"), "worker_id": worker_id, "worker_ext_id": worker_ext_id,
        "page": page, "path": path[:1000], "cases": len(refs)}).scalar_one()
    if refs:
        session.execute(insert(AccessLogCase), [{"access_id": view_id, "case_ref": r} for r in refs])
    return view_id


@dataclass(frozen=True)
class ViewRow:
    id: int
    at: datetime
    worker: str
    page: str
    path: str
    case_refs: tuple[str, ...]


def list_views(session: Session, *, case_ref: str | None = None, worker_ext_id: str | None = None,
               start: datetime | None = None, end: datetime | None = None,
               limit: int | None = 500) -> list[ViewRow]:
    """The newest views first, filtered by case reference, worker and time ([start, end))."""
    query = select(AccessLog).order_by(AccessLog.at.desc(), AccessLog.id.desc())
    if case_ref:
        query = query.where(AccessLog.id.in_(
            select(AccessLogCase.access_id).where(AccessLogCase.case_ref == case_ref)))
    if worker_ext_id:
        query = query.where(AccessLog.worker_ext_id == worker_ext_id)
    if start is not None:
        query = query.where(AccessLog.at >= ensure_aware(start))
    if end is not None:
        query = query.where(AccessLog.at < ensure_aware(end))
    if limit:
        query = query.limit(limit)
    views = list(session.exec(query).all())
    refs: dict[int, list[str]] = {v.id: [] for v in views}
    ids = list(refs)
    for start_at in range(0, len(ids), 500):
        for access_id, ref in session.execute(
            select(AccessLogCase.access_id, AccessLogCase.case_ref)
            .where(AccessLogCase.access_id.in_(ids[start_at:start_at + 500]))
            .order_by(AccessLogCase.id)
        ):
            refs[access_id].append(ref)
    return [ViewRow(v.id, v.at, v.worker_ext_id, v.page, v.path, tuple(refs[v.id])) for v in views]


def views_csv(rows: Sequence[ViewRow]) -> str:
    """The views as CSV (one line per view; case references separated by spaces)."""
    from watchdog.reports.output import safe_cell

    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["tidspunkt (UTC)", "medarbejder", "side", "adresse", "sager"])
    for r in rows:
        writer.writerow([r.at.isoformat(), safe_cell(r.worker), r.page, safe_cell(r.path),
                         safe_cell(" ".join(r.case_refs))])
    return out.getvalue()
