"""Benchmark phases for intake: ``watchdog import`` of the whole store as a nightly export, and HTTP
ingest in batches of 1,000 records, each against its floor in the same run.

I/O: reads the benchmark store, writes the export as CSV files under benchmarks/out/, creates an
empty database next to the store's copy (a SQLite file, or a PostgreSQL database named for the run)
and drops it again, and starts the real ``watchdog serve`` process on a free loopback port.
"""

from __future__ import annotations

import csv
import json
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path

from benchmarks.store import OUT, RUN_ID, _drop_pg, _pg_admin, _pg_url

BATCH = 1_000
INGEST_BATCHES = 40


def _export_queries():
    """Per entity file: (name, columns, select) in the import's own format, ext_ids for references."""
    from sqlalchemy import select
    from sqlalchemy.orm import aliased

    from watchdog.casestore import (
        Case, FollowUp, Investigation, Measure, Notification, SupervisionVisit, Team, Worker,
    )

    assessor, caseworker = aliased(Worker), aliased(Worker)
    return [
        ("teams", ["ext_id", "name"], select(Team.ext_id, Team.name).order_by(Team.id)),
        ("workers", ["ext_id", "name", "email", "team", "role", "fte"],
         select(Worker.ext_id, Worker.name, Worker.email, Team.ext_id, Worker.role, Worker.fte)
         .outerjoin(Team, Team.id == Worker.team_id).order_by(Worker.id)),
        ("cases", ["ext_id", "team", "worker", "birth_date", "opened_at", "closed_at", "aftercare_decided_at"],
         select(Case.ext_id, Team.ext_id, caseworker.ext_id, Case.birth_date, Case.opened_at, Case.closed_at,
                Case.aftercare_decided_at).join(Team, Team.id == Case.team_id)
         .outerjoin(caseworker, caseworker.id == Case.worker_id).order_by(Case.id)),
        ("notifications", ["ext_id", "case", "received_at", "professional_notifier", "assessed_at",
                           "assessed_by", "receipt_confirmed_at", "child_in_support", "reassessed_at",
                           "reassessment_reasoning_recorded"],
         select(Notification.ext_id, Case.ext_id, Notification.received_at, Notification.professional_notifier,
                Notification.assessed_at, assessor.ext_id, Notification.receipt_confirmed_at,
                Notification.child_in_support, Notification.reassessed_at,
                Notification.reassessment_reasoning_recorded).join(Case, Case.id == Notification.case_id)
         .outerjoin(assessor, assessor.id == Notification.assessed_by_id).order_by(Notification.id)),
        ("investigations", ["ext_id", "case", "notification", "kind", "aware_at", "completed_at",
                            "interim_assessed_at"],
         select(Investigation.ext_id, Case.ext_id, Notification.ext_id, Investigation.kind, Investigation.aware_at,
                Investigation.completed_at, Investigation.interim_assessed_at)
         .join(Case, Case.id == Investigation.case_id)
         .outerjoin(Notification, Notification.id == Investigation.notification_id).order_by(Investigation.id)),
        ("measures", ["ext_id", "case", "kind", "legal_basis", "decided_at", "effected_at", "ended_at",
                      "investigation", "child_conversation_at", "child_conversation_exemption", "plan_at",
                      "plan_required"],
         select(Measure.ext_id, Case.ext_id, Measure.kind, Measure.legal_basis, Measure.decided_at,
                Measure.effected_at, Measure.ended_at, Investigation.ext_id, Measure.child_conversation_at,
                Measure.child_conversation_exemption, Measure.plan_at, Measure.plan_required)
         .join(Case, Case.id == Measure.case_id)
         .outerjoin(Investigation, Investigation.id == Measure.investigation_id).order_by(Measure.id)),
        ("follow_ups", ["ext_id", "measure", "performed_at", "next_planned_on"],
         select(FollowUp.ext_id, Measure.ext_id, FollowUp.performed_at, FollowUp.next_planned_on)
         .join(Measure, Measure.id == FollowUp.measure_id).order_by(FollowUp.id)),
        ("visits", ["ext_id", "measure", "visited_at", "child_conversation"],
         select(SupervisionVisit.ext_id, Measure.ext_id, SupervisionVisit.visited_at,
                SupervisionVisit.child_conversation)
         .join(Measure, Measure.id == SupervisionVisit.measure_id).order_by(SupervisionVisit.id)),
    ]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nej"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()  # aware UTC: an ISO instant with its offset, never ambiguous
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",")
    return str(value)


def export_store(url: str, folder: Path) -> dict[str, int]:
    """Write the store's facts as the case system's nightly export: one CSV per entity (``;``,
    UTF-8 with BOM, as Excel writes them). Returns the rows per file."""
    from watchdog.db import make_engine

    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    counts = {}
    try:
        with engine.connect() as conn:
            for name, columns, query in _export_queries():
                with open(folder / f"{name}.csv", "w", encoding="utf-8-sig", newline="") as fh:
                    writer = csv.writer(fh, delimiter=";")
                    writer.writerow(columns)
                    n = 0
                    for row in conn.execution_options(yield_per=5000).execute(query):
                        writer.writerow([_cell(v) for v in row])
                        n += 1
                counts[name] = n
    finally:
        engine.dispose()
    return counts


@contextmanager
def empty_database(url: str, label: str) -> Iterator[str]:
    """A new, empty database beside the store's copy, migrated to the current schema; dropped after."""
    from watchdog.db import make_engine, upgrade

    if url.startswith("sqlite:///"):
        path = OUT / f"{label}-{RUN_ID}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        target = f"sqlite:///{path}"
    else:
        from sqlalchemy import text

        name = f"watchdog_bench_{label}_{RUN_ID}"
        admin = _pg_admin()
        _drop_pg(admin, name)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        target = _pg_url(name)
    engine = make_engine(target)
    upgrade(engine)
    engine.dispose()
    try:
        yield target
    finally:
        if target.startswith("sqlite:///"):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target.removeprefix('sqlite:///')}{suffix}").unlink(missing_ok=True)
        else:
            _drop_pg(admin, name)
            admin.dispose()


def _floor_cells(table, header: list[str], spec, dialect: str, ids: dict[str, dict[str, int]]):
    """(columns, one converter per CSV column) for the floor: each cell to the value the product
    stores, the cheapest correct way — an ISO instant to SQLite's UTC text (PostgreSQL's COPY
    parses it itself), ``ja``/``nej`` to a bool, a decimal comma to a float, an enum's value to the
    name SQLAlchemy stores, a reference through the dict of the ids the floor gave its rows."""
    from sqlalchemy import Boolean, Date, Enum as SAEnum, Float
    from sqlmodel.sql.sqltypes import UTCDateTime

    from watchdog.intake.upsert_sql import sqlite_instant as _sqlite_instant

    yes_no = {"ja": True, "nej": False, "": None}
    columns, converters = [], []
    for name in header:
        if name in spec.refs:
            target, column = spec.refs[name]
            known = ids[target]
            columns.append(column)
            converters.append(lambda s, known=known: known[s] if s else None)
            continue
        kind = table.c[name].type
        columns.append(name)
        if isinstance(kind, UTCDateTime):
            converters.append((lambda s: _sqlite_instant(datetime.fromisoformat(s)) if s else None)
                              if dialect == "sqlite" else (lambda s: s or None))
        elif isinstance(kind, Boolean):
            converters.append(yes_no.__getitem__)
        elif isinstance(kind, Float):
            converters.append(lambda s: float(s.replace(",", ".")) if s else None)
        elif isinstance(kind, SAEnum):
            names = {e.value: e.name for e in kind.enum_class}
            converters.append(lambda s, names=names: names[s] if s else None)
        elif isinstance(kind, Date):
            converters.append(lambda s: s or None)
        else:
            converters.append(lambda s: s or None)
    return columns, converters


def _floor_load(target: str, folder: Path, files: list[str], *, into_real: bool = True) -> int:
    """csv.reader over the same files, every row with the raw driver's cheapest bulk insert
    (executemany of one prepared INSERT on SQLite, COPY on PostgreSQL), one transaction.

    ``into_real``: into the tables the import fills, in the empty migrated database — so the insert
    maintains their indexes and checks their constraints as the import must — each cell converted
    to the stored value (``_floor_cells``), the floor numbering the rows itself so that a
    reference is a dict lookup, the other columns their defaults (a case starts dirty, stamped
    now). Else every row as text into a bare table of its CSV columns (no index, no constraint,
    no conversion): the detail's lower bound."""
    from watchdog.db import make_engine
    from watchdog.intake.schemas import ENTITIES

    engine = make_engine(target)
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    now = datetime.now(UTC)
    ids: dict[str, dict[str, int]] = {}
    rows = 0
    try:
        cursor = raw.cursor()
        for name in files:
            with open(folder / f"{name}.csv", encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh, delimiter=";")
                header = next(reader)
                if into_real:
                    spec = ENTITIES[name]
                    table = spec.table.__table__
                    columns, converters = _floor_cells(table, header, spec, engine.dialect.name, ids)
                    given = {"id", *columns}
                    extra = {c.name: _stored_default(c, sqlite, now) for c in table.c if c.name not in given
                             and not c.nullable and c.server_default is None}
                    extra.update({c.name: _stored_default(c, sqlite, now) for c in table.c
                                  if c.name not in given and c.server_default is not None})
                    mine = ids[name] = {}
                    pairs = list(zip(converters, range(len(header))))
                    tail = tuple(extra.values())

                    def rows_of(reader=reader, mine=mine, pairs=pairs, tail=tail):
                        for number, r in enumerate(reader, start=1):
                            mine[r[0]] = number
                            yield (number, *[convert(r[i]) for convert, i in pairs], *tail)

                    table_name, names = table.name, ["id", *columns, *extra]
                    produced = rows_of()
                else:
                    table_name, names = f"floor_{name}", header
                    cursor.execute(f'DROP TABLE IF EXISTS "{table_name}"')
                    text_columns = ", ".join(f'"{c}" TEXT' for c in header)
                    cursor.execute(f'CREATE TABLE "{table_name}" ({text_columns})')
                    produced = (tuple(r) for r in reader)
                quoted = ", ".join(f'"{c}"' for c in names)
                if sqlite:
                    batch = list(produced)
                    marks = ", ".join("?" * len(names))
                    cursor.executemany(f'INSERT INTO "{table_name}" ({quoted}) VALUES ({marks})', batch)
                    rows += len(batch)
                else:
                    with cursor.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN') as copy:
                        for r in produced:
                            copy.write_row(r)
                            rows += 1
        if into_real and not sqlite:  # the sequences past the floor's own ids, as a load must leave them
            for name in files:
                table = ENTITIES[name].table.__table__.name
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), {len(ids[name]) or 1})")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return rows


def _stored_default(column, sqlite: bool, now: datetime):
    """What the import stores in a column the export does not give: a new case is stamped now."""
    from enum import Enum as PyEnum

    from watchdog.intake.upsert_sql import sqlite_instant as _sqlite_instant

    if column.name == "facts_changed_at":
        return _sqlite_instant(now) if sqlite else now
    value = column.default.arg if column.default is not None and column.default.is_scalar else None
    return value.name if isinstance(value, PyEnum) else value


def phase_import(url: str) -> dict:
    """The real ``watchdog import`` process over the store's export into an empty database, against
    the floor of loading the same files into the same tables with the raw driver (``_floor_load``;
    into bare text tables in the detail), best of two. ``seconds`` is the import alone, to its commit (as the
    process reports it, ``--json``); the deadline recompute after it (in an empty database a first
    computation of every deadline) is reported beside it, and the peak RSS is the whole process's."""
    folder = OUT / f"export-{RUN_ID}"
    counts = export_store(url, folder)
    files = [name for name, _c, _q in _export_queries()]
    records = sum(counts.values())
    try:
        floor = bare = float("inf")
        for _ in range(2):
            with empty_database(url, "floor") as target:
                started = time.perf_counter()
                _floor_load(target, folder, files)
                floor = min(floor, time.perf_counter() - started)
                started = time.perf_counter()
                _floor_load(target, folder, files, into_real=False)
                bare = min(bare, time.perf_counter() - started)
        with empty_database(url, "import") as target:
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "watchdog", "--database-url", target, "import", "--json",
                                   *(str(folder / f"{n}.csv") for n in files)],
                                  capture_output=True, text=True)
            process_seconds = time.perf_counter() - started
            child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if proc.returncode != 0:
                raise RuntimeError(f"watchdog import failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            reported = json.loads(proc.stdout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = reported["seconds"]["import"]
    recompute = reported["seconds"].get("deadlines", 0.0)
    return {"seconds": seconds,
            "detail": {"records": records, "records_per_s": round(records / seconds),
                       "floor_seconds": round(floor, 3), "floor_records_per_s": round(records / floor),
                       "ratio": round(seconds / floor, 2),
                       "into_bare_text_tables_s": round(bare, 3),
                       "recompute_seconds": round(recompute, 3),
                       "deadlines_recomputed": reported["deadlines_recomputed"],
                       "recompute_ratio": round(recompute / floor, 2),
                       "process_seconds": round(process_seconds, 3),
                       "import_peak_rss_mb": round(max(child_rss, before) / 1024), "files": counts}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _case_batches(url: str) -> tuple[list[dict], list[list[dict]]]:
    """The teams, workers, then batches of 1,000 cases from the store, as the API takes them."""
    folder = OUT / f"ingest-{RUN_ID}"
    export_store(url, folder)
    try:
        def read(name):
            with open(folder / f"{name}.csv", encoding="utf-8-sig", newline="") as fh:
                return list(csv.DictReader(fh, delimiter=";"))
        teams, workers, cases = read("teams"), read("workers"), read("cases")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for w in workers:
        w["fte"] = float(w["fte"].replace(",", "."))
    cases = [{k: v for k, v in c.items() if v != ""} for c in cases[: BATCH * INGEST_BATCHES]]
    setup = [("teams", teams), ("workers", workers)]
    return setup, [cases[i:i + BATCH] for i in range(0, len(cases), BATCH)]


def phase_ingest(url: str) -> dict:
    """The real ``watchdog serve`` process: POST /v1/cases in batches of 1,000 new cases into an
    empty database, per-batch latency and the request's own stages; floor: the same rows inserted
    into the same table and committed per batch with the raw driver (``_ingest_floor``)."""
    setup, batches = _case_batches(url)
    with empty_database(url, "ingest") as target:
        token = subprocess.run([sys.executable, "-m", "watchdog", "--database-url", target, "token", "create",
                                "bench", "--scope", "write"], capture_output=True, text=True, check=True
                               ).stdout.strip().splitlines()[-1]
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "watchdog", "--database-url", target, "serve",
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for(port, server)

            stages: list[dict[str, float]] = []

            def post(entity: str, records: list[dict]) -> float:
                body = json.dumps(records).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/{entity}", data=body, method="POST",
                                                 headers={"Authorization": f"Bearer {token}",
                                                          "Content-Type": "application/json"})
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=300) as answer:
                    answer.read()
                    timing = answer.headers.get("Server-Timing", "")
                seconds = time.perf_counter() - started
                stages.append({part.split(";dur=")[0].strip(): float(part.split(";dur=")[1]) / 1000
                               for part in timing.split(",") if ";dur=" in part})
                return seconds

            for entity, records in setup:
                for i in range(0, len(records), BATCH):
                    post(entity, records[i:i + BATCH])
            stages.clear()
            latencies = [post("cases", batch) for batch in batches]
        finally:
            server.terminate()
            server.wait(timeout=30)
    floor = _ingest_floor(url, setup, batches)
    records = sum(len(b) for b in batches)
    p50, floor_p50 = statistics.median(latencies), statistics.median(floor)
    # The request's own stages (Server-Timing): the upsert to its commit, then the recompute of the
    # batch's cases; each against the same per-batch floor.
    write_p50 = statistics.median(s.get("import", 0.0) for s in stages)
    recompute_p50 = statistics.median(s.get("deadlines", 0.0) for s in stages)
    return {"seconds": sum(latencies),
            "detail": {"records": records, "batches": len(batches), "records_per_s": round(records / sum(latencies)),
                       "p50_ms": round(p50 * 1000, 1), "floor_p50_ms": round(floor_p50 * 1000, 1),
                       "ratio": round(p50 / floor_p50, 2),
                       "upsert_p50_ms": round(write_p50 * 1000, 1), "upsert_ratio": round(write_p50 / floor_p50, 2),
                       "recompute_p50_ms": round(recompute_p50 * 1000, 1)}}


def _ingest_floor(url: str, setup: list, batches: list[list[dict]]) -> list[float]:
    """Per batch of 1,000: the same cases inserted into the table the ingest fills and committed,
    with the raw driver's executemany of one prepared INSERT, in an empty migrated database holding
    the same teams and workers (loaded first, untimed): each value converted to the stored one (an
    ISO instant to SQLite's UTC text; PostgreSQL parses it), team and worker by a dict of their ids
    read once, a new case dirty and stamped now — what any writer of these rows must do."""
    from sqlalchemy import select

    from watchdog.casestore import Case, Team, Worker
    from watchdog.db import make_engine
    from watchdog.intake.upsert_sql import sqlite_instant as _sqlite_instant

    with empty_database(url, "ingest_floor") as target:
        engine = make_engine(target)
        sqlite = engine.dialect.name == "sqlite"
        teams, workers = dict(setup)["teams"], dict(setup)["workers"]
        with engine.begin() as conn:
            conn.execute(Team.__table__.insert(), [{"ext_id": t["ext_id"], "name": t["name"]} for t in teams])
            team_ids = dict(conn.execute(select(Team.ext_id, Team.id)).all())
            conn.execute(Worker.__table__.insert(), [
                {"ext_id": w["ext_id"], "name": w["name"], "email": w["email"], "team_id": team_ids.get(w["team"]),
                 "fte": w["fte"], "role": w["role"].upper(), "active": True} for w in workers])
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT ext_id, id FROM team")
            team_ids = dict(cursor.fetchall())
            cursor.execute("SELECT ext_id, id FROM worker")
            worker_ids = dict(cursor.fetchall())
            raw.commit()
            mark = "?" if sqlite else "%s"
            columns = ("ext_id", "team_id", "worker_id", "birth_date", "opened_at", "closed_at",
                       "aftercare_decided_at", "facts_changed_at", "facts_version", "dirty")
            sql = f"INSERT INTO case_file ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
            instant = ((lambda s: _sqlite_instant(datetime.fromisoformat(s)) if s else None) if sqlite
                       else (lambda s: s))
            floor = []
            for batch in batches:
                started = time.perf_counter()
                now = datetime.now(UTC)
                stamp = _sqlite_instant(now) if sqlite else now
                cursor.executemany(sql, [
                    (c["ext_id"], team_ids[c["team"]], worker_ids[c["worker"]] if c.get("worker") else None,
                     c.get("birth_date"), instant(c["opened_at"]), instant(c.get("closed_at")),
                     instant(c.get("aftercare_decided_at")), stamp, 1, True) for c in batch])
                raw.commit()
                floor.append(time.perf_counter() - started)
        finally:
            raw.close()
            engine.dispose()
    return floor


def _wait_for(port: int, proc: subprocess.Popen) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"watchdog serve did not start: {proc.stderr.read().decode()[-3000:]}")
            time.sleep(0.1)
    raise RuntimeError("watchdog serve did not answer /healthz within 30 s")
