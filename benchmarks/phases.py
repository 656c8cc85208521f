"""The benchmark's phases: each measures one piece of work on a copy of the national store.

Each is a plain function of the store's URL returning ``{"seconds": …, "detail": {…}}``; the runner
(``benchmarks.run``) calls each in a fresh Python process so that its peak RSS is its own.
I/O: the store's database; the delivery phase also starts a local SMTP sink.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from benchmarks.store import GENERATED_AT, poll_once, settings_for

RECOMPUTE_AT = GENERATED_AT + timedelta(hours=1)
IDLE_POLL_AT = GENERATED_AT + timedelta(hours=2)
CHANGE_AT = GENERATED_AT + timedelta(hours=3)
CHANGED_SHARE = 0.01
DELIVERY_AT = CHANGE_AT + timedelta(minutes=1)


def phase_floor(url: str) -> dict:
    from watchdog.db import make_engine

    queries = floor_queries()
    engine = make_engine(url)
    best, counts = float("inf"), []
    try:
        for _ in range(2):
            started = time.perf_counter()
            counts = [sum(1 for _ in raw_rows(engine, q)) for q in queries]
            best = min(best, time.perf_counter() - started)
    finally:
        engine.dispose()
    return {"seconds": best, "detail": {"fact_rows": sum(counts[:-1]), "deadline_rows": counts[-1]}}


def floor_queries() -> list:
    """One query per table the full recompute reads: the facts of every case and the deadline rows."""
    from sqlalchemy import select

    from watchdog.casestore import (
        Case, FollowUp, Investigation, Measure, Notification, ReassessmentParticipant, SupervisionVisit,
    )
    from watchdog.deadlines import Deadline
    from watchdog.recompute import _FIELDS

    return [
        select(Case.id, Case.opened_at, Case.worker_id, Case.birth_date, Case.closed_at,
               Case.aftercare_decided_at),
        select(Notification.id, Notification.case_id, Notification.received_at,
               Notification.professional_notifier, Notification.assessed_at, Notification.assessed_by_id,
               Notification.receipt_confirmed_at, Notification.child_in_support, Notification.reassessed_at),
        select(ReassessmentParticipant.notification_id, ReassessmentParticipant.worker_id),
        select(Investigation.id, Investigation.case_id, Investigation.kind, Investigation.aware_at,
               Investigation.completed_at, Investigation.interim_assessed_at, Investigation.notification_id),
        select(Measure.id, Measure.case_id, Measure.kind, Measure.legal_basis, Measure.decided_at,
               Measure.effected_at, Measure.ended_at, Measure.investigation_id, Measure.child_conversation_at,
               Measure.child_conversation_exemption, Measure.plan_at, Measure.plan_required),
        select(FollowUp.id, FollowUp.measure_id, FollowUp.performed_at, FollowUp.next_planned_on),
        select(SupervisionVisit.id, SupervisionVisit.measure_id, SupervisionVisit.visited_at,
               SupervisionVisit.child_conversation),
        select(Deadline.id, Deadline.key, *(getattr(Deadline, name) for name in _FIELDS)),
    ]


def raw_rows(engine, query):
    """Stream ``query``'s rows through the raw DB-API cursor into tuples with the same Python types
    the product gets (aware UTC datetimes, dates), converted the cheapest way per driver: the
    floor must not pay SQLAlchemy's per-value type processing that the product pays, nor any cost
    the product has learnt to avoid (a SQLite instant parsed with its offset appended, one C call,
    not parsed and then given its zone; one generated function per row; the garbage collector
    paused while a batch of tuples is built, as ``typed_rows`` and the recompute do)."""
    import datetime as dt
    import gc

    from sqlalchemy import Date, DateTime

    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    sqlite = engine.dialect.name == "sqlite"
    env: dict = {"parse": dt.datetime.fromisoformat, "day": dt.date.fromisoformat, "UTC": UTC}
    parts = []
    for i, column in enumerate(query.selected_columns):
        kind = getattr(column.type, "impl", column.type)  # SQLModel's UTCDateTime decorates DateTime
        if isinstance(kind, DateTime):
            parts.append(f"(None if r[{i}] is None else parse(r[{i}] + '+00:00'))" if sqlite
                         else f"(None if r[{i}] is None else r[{i}].astimezone(UTC))")
        elif isinstance(kind, Date) and sqlite:
            parts.append(f"(None if r[{i}] is None else day(r[{i}]))")
        else:
            parts.append(f"r[{i}]")
    row = eval(f"lambda r: ({', '.join(parts)},)", env)  # noqa: S307 - built from column indices only
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(str(compiled))
        while rows := cursor.fetchmany(2000):
            # Streamed, like the recompute: holding 900,000 tuples at once would measure the
            # garbage collector, not the database.
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                batch = [row(r) for r in rows]
            finally:
                if was_enabled:
                    gc.enable()
            yield from batch
        cursor.close()
    finally:
        raw.close()


def _full_refresh_best_of_two(engine, settings) -> dict:
    """``refresh_deadlines`` over every case twice: the first run rolled back so that both do the
    same work, the second committed. Best of two, as the floors: one run against a floor's best of
    two would count this shared machine's drift against the product."""
    from sqlmodel import Session

    from watchdog.db import session_scope
    from watchdog.recompute import refresh_deadlines

    with Session(engine) as session:
        started = time.perf_counter()
        refresh_deadlines(session, now=RECOMPUTE_AT, settings=settings)
        session.flush()
        first = time.perf_counter() - started
        session.rollback()
    started = time.perf_counter()
    with session_scope(engine) as session:
        stats = refresh_deadlines(session, now=RECOMPUTE_AT, settings=settings)
    second = time.perf_counter() - started
    return {"seconds": min(first, second), "detail": {**asdict(stats), "runs_s": [round(first, 3), round(second, 3)]}}


def phase_recompute(url: str) -> dict:
    from watchdog.db import make_engine

    settings, engine = settings_for(url), make_engine(url)
    try:
        return _full_refresh_best_of_two(engine, settings)
    finally:
        engine.dispose()


@contextmanager
def _every_citation_corrected():
    """A rule change that touches every deadline: each paragraph's text corrected (in this process,
    until the block ends), as a correction in ``rules/citations.py`` would be, so the next refresh
    rewrites every row."""
    from watchdog.rules import citations

    saved = dict(citations.CITATIONS)
    for key, cited in saved.items():
        citations.CITATIONS[key] = citations.Citation((cited.text + " (rettet)")[:100], cited.confidence)
    try:
        yield
    finally:
        citations.CITATIONS.clear()
        citations.CITATIONS.update(saved)


def phase_rule_change_floor(url: str) -> dict:
    """The floor of a rule change: the raw reads of the floor, then one UPDATE per deadline row
    (its citation) through the raw driver's executemany in one transaction; best of two, rolled back."""
    from watchdog.db import make_engine
    from watchdog.recompute import _FIELDS

    engine = make_engine(url)
    queries = floor_queries()
    best, rows = float("inf"), 0
    try:
        for _ in range(2):
            started = time.perf_counter()
            for q in queries[:-1]:
                for _row in raw_rows(engine, q):
                    pass
            at = 2 + _FIELDS.index("citation")  # the deadline query reads id, key, then _FIELDS
            deadlines = [(f"{r[at]} (rettet)"[:100], r[0]) for r in raw_rows(engine, queries[-1])]
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                marker = "?" if engine.dialect.name == "sqlite" else "%s"
                cursor.executemany(f"UPDATE deadline SET citation = {marker} WHERE id = {marker}", deadlines)
                raw.rollback()
            finally:
                raw.close()
            rows = len(deadlines)
            best = min(best, time.perf_counter() - started)
    finally:
        engine.dispose()
    return {"seconds": best, "detail": {"deadline_rows": rows}}


def phase_rule_change(url: str) -> dict:
    """``refresh_deadlines`` over every case after every citation was corrected: every row rewritten.
    Best of two, as its floor (the first rolled back, the second committed)."""
    from watchdog.db import make_engine

    settings, engine = settings_for(url), make_engine(url)
    try:
        _warm_up(engine, settings)
        with _every_citation_corrected():
            return _full_refresh_best_of_two(engine, settings)
    finally:
        engine.dispose()


def _warm_up(engine, settings) -> None:
    """Recompute one case and roll back: a running service has its rules and calendars loaded
    (the first use imports them and builds the holiday tables, about 0.3 s, once per process)."""
    from sqlalchemy import select
    from sqlmodel import Session

    from watchdog.casestore import Case
    from watchdog.recompute import refresh_deadlines

    with Session(engine) as session:
        first = session.execute(select(Case.id).limit(1)).scalar()
        refresh_deadlines(session, now=GENERATED_AT, settings=settings, case_ids=[first] if first else [])
        session.rollback()


def phase_poll_idle(url: str) -> dict:
    from watchdog.db import make_engine

    settings, engine = settings_for(url), make_engine(url)
    try:
        _warm_up(engine, settings)
        poll_once(engine, settings, IDLE_POLL_AT - timedelta(minutes=1))  # the poll before
        seconds, stats = poll_once(engine, settings, IDLE_POLL_AT)
        return {"seconds": seconds, "detail": stats}
    finally:
        engine.dispose()


def change_cases(engine, *, share: float, now: datetime, seed: int = 7) -> list[int]:
    """Change a fact of ``share`` of the cases, as an import would: a notification assessed, an
    investigation completed, or the case handed to another caseworker; mark the cases dirty."""
    from sqlalchemy import select, update

    from watchdog.casestore import Case, Investigation, Notification

    rng = random.Random(seed)
    with engine.begin() as conn:
        ids = list(conn.execute(select(Case.id).order_by(Case.id)).scalars())
        workers = sorted(set(conn.execute(select(Case.worker_id).where(Case.worker_id.is_not(None))).scalars()))
        chosen = sorted(rng.sample(ids, max(1, round(len(ids) * share))))
        for case_id in chosen:
            roll = rng.random()
            if roll < 0.4:
                conn.execute(update(Notification).where(Notification.case_id == case_id,
                                                        Notification.assessed_at.is_(None))
                             .values(assessed_at=now - timedelta(minutes=30)))
            elif roll < 0.7:
                conn.execute(update(Investigation).where(Investigation.case_id == case_id,
                                                         Investigation.completed_at.is_(None))
                             .values(completed_at=now - timedelta(minutes=30)))
            else:
                conn.execute(update(Case).where(Case.id == case_id).values(worker_id=rng.choice(workers)))
        conn.execute(update(Case).where(Case.id.in_(chosen)).values(
            facts_changed_at=now - timedelta(minutes=5), dirty=True, facts_version=Case.facts_version + 1))
    return chosen


def phase_poll_changed(url: str) -> dict:
    from watchdog.db import make_engine

    settings, engine = settings_for(url), make_engine(url)
    try:
        _warm_up(engine, settings)
        poll_once(engine, settings, CHANGE_AT - timedelta(minutes=10))  # the poll before the change
        chosen = change_cases(engine, share=CHANGED_SHARE, now=CHANGE_AT)
        seconds, stats = poll_once(engine, settings, CHANGE_AT)
        return {"seconds": seconds, "detail": {**stats, "cases_changed": len(chosen)}}
    finally:
        engine.dispose()


def phase_planning(url: str) -> dict:
    from sqlalchemy import func, select

    from sqlmodel import Session

    from watchdog import outbox
    from watchdog.db import make_engine, session_scope
    from watchdog.deadlines import Deadline
    from watchdog.rules.types import Status
    from watchdog.service import plan_due_alerts

    settings, engine = settings_for(url), make_engine(url)
    try:
        with Session(engine) as session:
            plannable = session.execute(select(func.count()).select_from(Deadline).where(
                Deadline.status.in_([Status.OPEN, Status.BREACHED, Status.EXCEPTED]))).scalar_one()
        started = time.perf_counter()
        # As after a change of the alert policy: plan everything, enqueue, commit.
        with session_scope(engine) as session:
            alerts = plan_due_alerts(session, settings, now=CHANGE_AT, everything=True)
            enqueued = outbox.enqueue(session, alerts, now=CHANGE_AT)
        return {"seconds": time.perf_counter() - started,
                "detail": {"deadlines_considered": plannable, "alerts_planned": len(alerts),
                           "alerts_enqueued": enqueued}}
    finally:
        engine.dispose()


def phase_delivery(url: str) -> dict:
    from benchmarks.delivery import phase_delivery as measure

    return measure(url, now=DELIVERY_AT, settings_for=settings_for)


PHASE_FUNCTIONS: dict[str, Callable[[str], dict]] = {
    "floor": phase_floor, "recompute": phase_recompute, "poll_idle": phase_poll_idle,
    "poll_changed": phase_poll_changed, "planning": phase_planning, "delivery": phase_delivery,
    "rule_change_floor": phase_rule_change_floor, "rule_change": phase_rule_change,
}


# --------------------------------------------------------------------------------------------
# Go-live: the first computation of every deadline, and the first poll after it, each measured
# in this run beside its floor (before, they were timed once at generation and divided by another
# run's floor).

_DERIVED = ("delivery_attempt", "acknowledgement", "alert", "outcome_event", "recompute_failure", "deadline",
            "poll_state", "service_heartbeat")


def _wipe_derived(engine) -> None:
    """Back to the store as an import leaves it: the facts, every case marked changed (dirty), and
    nothing computed from them."""
    from sqlalchemy import text, update

    from watchdog.casestore import Case

    with engine.begin() as conn:
        for name in _DERIVED:
            conn.execute(text(f'DELETE FROM "{name}"'))
        conn.execute(update(Case).values(dirty=True, facts_version=Case.facts_version + 1))


def _bulk_insert(engine, tables: dict[str, tuple[list[str], list[tuple]]], *, into_real: bool) -> float:
    """The cheapest bulk insert the driver has (executemany of one prepared INSERT on SQLite, COPY
    on PostgreSQL) of ``tables``' rows, rolled back; returns its seconds. ``into_real``: into the
    tables themselves, emptied first in the same transaction (untimed), so the insert maintains
    their indexes and checks their foreign keys as the first computation must; else into bare
    temporary copies (no index, no constraint)."""
    raw = engine.raw_connection()
    sqlite = engine.dialect.name == "sqlite"
    try:
        cursor = raw.cursor()
        targets = {}
        for table in tables:
            if into_real:
                targets[table] = table
                continue
            targets[table] = f"floor_{table}"
            # SQLite's driver commits DDL at once, so the copy may outlive the rollback: start afresh.
            cursor.execute(f'DROP TABLE IF EXISTS "floor_{table}"')
            if sqlite:
                cursor.execute(f'CREATE TEMP TABLE "floor_{table}" AS SELECT * FROM "{table}" WHERE 0')
            else:
                cursor.execute(f'CREATE TEMP TABLE "floor_{table}" (LIKE "{table}" INCLUDING DEFAULTS)')
        if into_real:
            for name in _DERIVED:  # what references the deadlines, then the deadlines
                cursor.execute(f'DELETE FROM "{name}"')
        started = time.perf_counter()
        for table, (columns, rows) in tables.items():
            names = ", ".join(f'"{c}"' for c in columns)
            if sqlite:
                marks = ", ".join("?" for _ in columns)
                cursor.executemany(f'INSERT INTO "{targets[table]}" ({names}) VALUES ({marks})', rows)
            else:
                with cursor.copy(f'COPY "{targets[table]}" ({names}) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(row)
        seconds = time.perf_counter() - started
        raw.rollback()
        return seconds
    finally:
        raw.close()


def phase_first_floor(url: str) -> dict:
    """The floor of the first computation: the raw reads of the facts, then a bulk insert of as many
    deadline rows and outcome events as the store holds (taken from it, as the driver returns them)
    into the tables themselves (emptied first in the same transaction, untimed; rolled back); best of
    two. The same insert into bare temporary copies of the tables is in the detail."""
    from sqlalchemy import inspect, text

    from watchdog.db import make_engine

    engine = make_engine(url)
    try:
        tables = {}
        with engine.connect() as conn:
            for name in ("deadline", "outcome_event"):
                columns = [c["name"] for c in inspect(conn).get_columns(name)]
                rows = [tuple(r) for r in conn.exec_driver_sql(f'SELECT {", ".join(columns)} FROM "{name}" ORDER BY id')]
                tables[name] = (columns, rows)
        best, bare = float("inf"), float("inf")
        for _ in range(2):
            started = time.perf_counter()
            for q in floor_queries()[:-1]:
                for _row in raw_rows(engine, q):
                    pass
            reads = time.perf_counter() - started
            best = min(best, reads + _bulk_insert(engine, tables, into_real=True))
            bare = min(bare, reads + _bulk_insert(engine, tables, into_real=False))
    finally:
        engine.dispose()
    return {"seconds": best, "detail": {**{name: len(rows) for name, (_c, rows) in tables.items()},
                                        "into_bare_temporary_tables_s": round(bare, 3)}}


def phase_first(url: str) -> dict:
    """The first computation (``poll_deadlines`` over a store with no deadlines, as after the
    go-live import) and the first poll after it (planning everything, enqueueing, the digests for
    every leader); each best of two, each committed as a running service would."""
    from sqlmodel import Session

    from watchdog.db import make_engine, session_scope
    from watchdog.recompute import poll_deadlines

    settings, engine = settings_for(url), make_engine(url)
    try:
        _warm_up(engine, settings)
        computations, polls, stats, poll_stats = [], [], None, {}
        for attempt in range(2):
            _wipe_derived(engine)
            if attempt == 0:  # the first run is rolled back, as in the recompute
                with Session(engine) as session:
                    started = time.perf_counter()
                    poll_deadlines(session, now=GENERATED_AT, settings=settings)
                    session.flush()
                    computations.append(time.perf_counter() - started)
                    session.rollback()
            started = time.perf_counter()
            with session_scope(engine) as session:
                stats = poll_deadlines(session, now=GENERATED_AT, settings=settings)
            computations.append(time.perf_counter() - started)
            seconds, poll_stats = poll_once(engine, settings, GENERATED_AT)
            polls.append(seconds)
        return {"seconds": min(computations),
                "detail": {**asdict(stats), "runs_s": [round(x, 3) for x in computations],
                           "first_poll_seconds": min(polls), "first_poll_runs_s": [round(x, 3) for x in polls],
                           "first_poll": poll_stats}}
    finally:
        engine.dispose()


def phase_import(url: str) -> dict:
    from benchmarks.intake import phase_import as measure

    return measure(url)


def phase_ingest(url: str) -> dict:
    from benchmarks.intake import phase_ingest as measure

    return measure(url)


PHASE_FUNCTIONS.update({"first_floor": phase_first_floor, "first": phase_first, "import": phase_import,
                        "ingest": phase_ingest})
