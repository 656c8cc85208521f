"""Stage 1 intake, sources: a case system's reporting database, read on a schedule.

I/O: the vendor's database (read only: a read-only session, and a user that may only SELECT),
our database through the import (``intake.upsert.import_records``) and ``sources.state``.
``now`` comes in.

Per entity the mapping names a view (or a query) and its change column (a time such as
``changed_at``, or an integer rowversion). Every ``intake.sql_poll_seconds`` each entity's rows
changed since its watermark are read — re-reading an overlap window (``overlap_seconds`` /
``overlap_versions``) before it, because a row can be committed after rows with a later change
value were already read; the upsert is idempotent, so the overlap costs nothing but the reading.
Once a night (from ``full_read_hour``, local time) everything is read again: that catches any row
missed all the same, and reports stored records the source no longer has (they are not deleted:
the outcome log keeps their history; close them in the case system).

All entities read in one round are one batch: validated and imported all or nothing, in
dependency order. A refused batch leaves every watermark where it was (the next round reads the
same rows again) and raises one ops alert per refusal streak. Only the columns the mapping reads
are selected: a dropped column is never fetched. Several replicas: a lease on the source's row
lets one of them read at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import column, event, select, table, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from watchdog.clock import local_date, to_local
from watchdog.db import make_engine, session_scope
from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.parsing import RawRecord
from watchdog.intake.schemas import normalize_column
from watchdog.intake.sources import state
from watchdog.intake.sources.mapping import EntityMapping, Mapping, load_mapping
from watchdog.intake.sources.reading import mapped_records
from watchdog.intake.sources.watch import ops_alert
from watchdog.intake.upsert import import_records

log = logging.getLogger(__name__)

_ENGINES: dict[str, tuple[str, Engine]] = {}


@dataclass
class SqlRun:
    """One round of one SQL source."""

    source: str
    outcome: str  # busy | unchanged | imported | refused | error
    full: bool = False
    rows: int = 0
    per_entity: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    missing_in_source: dict[str, int] = field(default_factory=dict)
    detail: str = ""


def vendor_url(cfg) -> str:
    url = make_url(cfg.url)
    if cfg.password is not None:
        url = url.set(password=cfg.password.get_secret_value())
    return url.render_as_string(hide_password=False)


def vendor_engine(cfg) -> Engine:
    """One engine per source, kept between rounds; every session on it is read only."""
    url = vendor_url(cfg)
    cached = _ENGINES.get(cfg.name)
    if cached and cached[0] == url:
        return cached[1]
    if cached:
        cached[1].dispose()
    engine = make_engine(url)
    dialect = engine.dialect.name
    statement = {"mysql": "SET SESSION TRANSACTION READ ONLY", "mariadb": "SET SESSION TRANSACTION READ ONLY",
                 "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                 "sqlite": "PRAGMA query_only = ON"}.get(dialect)

    if statement:
        @event.listens_for(engine, "connect")
        def _read_only(dbapi_conn, _record):  # pragma: no cover - exercised by every read
            cur = dbapi_conn.cursor()
            cur.execute(statement)
            cur.close()
            if dialect == "postgresql":
                dbapi_conn.commit()

    _ENGINES[cfg.name] = (url, engine)
    return engine


def _relation(entity: EntityMapping):
    """The view as a FROM clause (``schema.view`` allowed); a query as a derived table."""
    if entity.query:
        return text(f"({entity.query}) q")
    schema, _, name = entity.view.rpartition(".")
    return table(name, schema=schema or None)


def _columns_of(conn, entity: EntityMapping) -> list[str]:
    """The relation's column names, without reading a row."""
    result = conn.execute(select(text("*")).select_from(_relation(entity)).where(text("1 = 0")))
    names = list(result.keys())
    result.close()
    return names


def _decode_mark(mark: dict[str, Any] | None) -> Any:
    if not mark:
        return None
    kind, value = mark["type"], mark["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    return int(value)


def _encode_mark(value: Any) -> dict[str, Any]:
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    return {"type": "int", "value": int(value)}


def _since(mark: Any, cfg) -> Any:
    """Where an incremental read starts: the watermark less the overlap (None: read everything)."""
    if mark is None:
        return None
    if isinstance(mark, datetime):
        return mark - timedelta(seconds=cfg.overlap_seconds)
    if isinstance(mark, date):
        return mark - timedelta(days=max(1, cfg.overlap_seconds // 86400))
    return mark - cfg.overlap_versions


def read_entity(conn, entity: EntityMapping, cfg, *, since: Any) -> tuple[list[str], list[tuple], Any]:
    """The entity's rows (all, or changed since ``since``): header, rows, and the newest change value."""
    header = [c for c in _columns_of(conn, entity) if normalize_column(c) not in entity.drop]
    changed = next((c for c in header if entity.changed_column
                    and normalize_column(c) == normalize_column(entity.changed_column)), None)
    if entity.changed_column and changed is None:
        raise ValidationFailed([Problem(f"{cfg.name}:{entity.view or 'query'}", "(header)", entity.changed_column,
                                        "the change column is not in the view or query")])
    query = select(*[column(c) for c in header]).select_from(_relation(entity))
    if changed is not None and since is not None:
        query = query.where(column(changed) >= since)
    rows = [tuple(r) for r in conn.execute(query)]
    newest = None
    if changed is not None and rows:
        i = header.index(changed)
        newest = max(r[i] for r in rows if r[i] is not None)
    return header, rows, newest


def _labelled(records: list[RawRecord], entity: EntityMapping, header: list[str], rows: list[tuple]) -> None:
    """Name each SQL row by its id column, so a refusal points at the vendor's record."""
    id_col = next((i for i, h in enumerate(header)
                   if entity.columns.get(normalize_column(h), normalize_column(h)) == "ext_id"), None)
    if id_col is None:
        return
    by_number = {str(n): row for n, row in enumerate(rows, start=1)}
    for rec in records:
        row = by_number.get(rec.record)
        if row is None:
            continue
        label = f"{rec.record} ({header[id_col]} {row[id_col]})"
        rec.record = label
        for problem in rec.problems:
            problem.record = label


def due_full_read(row: state.SourceState, cfg, now: datetime) -> bool:
    """The first read, and once per local day from ``full_read_hour``."""
    if row.last_full_at is None or not row.watermarks:
        return True
    return to_local(now).hour >= cfg.full_read_hour and local_date(row.last_full_at) < local_date(now)


def read_sql_source(engine: Engine, settings, cfg, *, now: datetime, replica: str,
                    mapping: Mapping | None = None, full: bool | None = None) -> SqlRun:
    """One round of one SQL source: read what changed (or everything), import it all or nothing."""
    mapping = mapping or load_mapping(cfg.mapping)
    with Session(engine, expire_on_commit=False) as session:
        row = state.get_state(session, cfg.name, "sql", now=now)
        session.commit()
        if not state.claim_source(session, cfg.name, replica=replica, now=now,
                                  seconds=settings.intake.source_claim_seconds):
            return SqlRun(cfg.name, "busy", detail="another replica is reading this source")
        session.refresh(row)
        marks = state.watermarks_of(row)
        full = due_full_read(row, cfg, now) if full is None else full
    try:
        return _read_and_import(engine, settings, cfg, mapping, marks, now=now, full=full)
    finally:
        with Session(engine) as session:
            state.release_source(session, cfg.name, replica=replica)


def _read_and_import(engine: Engine, settings, cfg, mapping: Mapping, marks: dict[str, Any], *,
                     now: datetime, full: bool) -> SqlRun:
    run = SqlRun(cfg.name, "unchanged", full=full)
    records: list[RawRecord] = []
    problems: list[Problem] = []
    new_marks = dict(marks)
    read_ids: dict[str, set[str]] = {}
    try:
        with vendor_engine(cfg).connect() as conn:
            for entity in mapping.ordered():
                if not (entity.view or entity.query):
                    continue
                since = None if full else _since(_decode_mark(marks.get(entity.name)), cfg)
                source = f"{cfg.name}:{entity.view or entity.name + ' query'}"
                try:
                    header, rows, newest = read_entity(conn, entity, cfg, since=since)
                    got = mapped_records(entity, header, rows, source=source, naive_times=mapping.naive_times,
                                         first_number=1)
                except ValidationFailed as exc:
                    problems.extend(exc.problems)
                    continue
                _labelled(got, entity, header, rows)
                records.extend(got)
                run.per_entity[entity.name] = len(got)
                if newest is not None:
                    old = _decode_mark(marks.get(entity.name))
                    new_marks[entity.name] = _encode_mark(newest if old is None or newest > old else old)
                if full:
                    read_ids[entity.name] = {str(r.values.get("ext_id")) for r in got}
            conn.rollback()
    except Exception as exc:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        with session_scope(engine) as session:
            state.record_error(session, cfg.name, now=now, error=f"cannot read: {message}")
        log.warning("sql source %s: cannot read: %s", cfg.name, message)
        run.outcome, run.detail = "error", message
        return run
    run.rows = len(records)
    if not records and not problems:
        with session_scope(engine) as session:
            state.record_read(session, cfg.name, now=now, rows=0, batch=False, watermarks=new_marks, full=full)
        return run
    try:
        result = import_records(engine, records, now=now, settings=settings, file_problems=problems)
    except ValidationFailed as exc:
        return _refused(engine, settings, cfg, run, exc.problems, now=now)
    except Exception as exc:  # our database: the next round reads the same rows again
        with session_scope(engine) as session:
            state.record_error(session, cfg.name, now=now, error=f"import failed: {exc}")
        run.outcome, run.detail = "error", str(exc)
        return run
    if full:
        run.missing_in_source = _missing(engine, read_ids)
        for name, n in run.missing_in_source.items():
            log.warning("sql source %s: %d %s stored are no longer in the source (kept, not deleted)",
                        cfg.name, n, name)
    with session_scope(engine) as session:
        state.record_read(session, cfg.name, now=now, rows=len(records), batch=True, watermarks=new_marks,
                          full=full)
    run.outcome = "imported"
    run.detail = f"{len(result.affected_case_ids)} cases changed"
    log.info("sql source %s: %s read, %d rows imported, %s", cfg.name, "full" if full else "incremental",
             len(records), run.detail)
    return run


def _missing(engine: Engine, read_ids: dict[str, set[str]]) -> dict[str, int]:
    from watchdog.intake.schemas import ENTITIES

    out = {}
    with Session(engine) as session:
        for name, ids in read_ids.items():
            model = ENTITIES[name].table
            stored = {r for (r,) in session.execute(select(model.ext_id))}
            if stored - ids:
                out[name] = len(stored - ids)
    return out


def _refused(engine: Engine, settings, cfg, run: SqlRun, problems: list[Problem], *, now: datetime) -> SqlRun:
    run.outcome, run.problems = "refused", problems
    with session_scope(engine) as session:
        since = state.record_refused(session, cfg.name, now=now,
                                     error=f"batch refused: {len(problems)} problems (first: {problems[0]})")
        first = "\n".join(f"- {p}" for p in problems[:10])
        ops_alert(session, settings, key=f"ops:source:{cfg.name}:{since.isoformat()}",
                  subject=f"watchdog: kilden {cfg.name} blev afvist ({len(problems)} problemer)",
                  text=(f"En læsning fra {cfg.name} blev afvist; intet af den er gemt, og kilden læses igen "
                        "fra samme sted ved næste runde (vandmærket er ikke flyttet).\n\n"
                        f"De første problemer (kilde, række, felt):\n{first}\n\n"
                        "Ret data i sagssystemet eller mappingen. Se `watchdog sources`."),
                  now=now)
    log.error("sql source %s: batch refused (%d problems), watermark kept: %s", cfg.name, len(problems),
              problems[0])
    return run
