"""The benchmark's national store: generated once, cached, copied fresh for every run.

I/O: writes benchmarks/out/ (the cached SQLite stores and their metadata) and, on PostgreSQL, the
databases ``watchdog_bench_tpl_<key>`` (the cached store, used as a template) and
``watchdog_bench_run_<pid>_<time>`` (this run's copy, dropped at its end). Never touches any other
database, nor another run's copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PG_ADMIN_URL = os.environ.get("WATCHDOG_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Each run works on its own copy, named for the run, so two runs on one server (two developers,
# a developer and CI) never drop each other's database.
RUN_ID = f"{os.getpid()}_{int(time.time())}"
PG_RUN_DB = f"watchdog_bench_run_{RUN_ID}"

# The store is generated as of GENERATED_AT; the phases run a little later, as a service would.
GENERATED_AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def settings_for(url: str, **overrides):
    from watchdog.settings import load_settings

    return load_settings(None, database_url=url, **overrides)


def poll_once(engine, settings, now: datetime) -> tuple[float, dict]:
    """One whole poll round as the service runs it (``service.poll``): recompute what changed,
    plan the deadlines whose next alert time has come, enqueue, and the intake and digest
    checks; each step in its own transaction, committed."""
    from watchdog import service

    started = time.perf_counter()
    report = service.poll(engine, settings, now=now, replica="bench")
    seconds = time.perf_counter() - started
    return seconds, {"cases_recomputed": report.cases_recomputed, "deadlines_written": report.deadlines_written,
                     "status_changes": report.status_changes, "alerts_planned": report.planned,
                     "alerts_enqueued": report.enqueued}


# --------------------------------------------------------------------------------------------
# The cached store

def store_key(cases: int, seed: int) -> str:
    """Cached stores are keyed by size, seed, the generator's version, and the schema, rules,
    planning and outbox code they were computed with (a change to any makes a new store)."""
    from benchmarks.generate import GENERATOR_VERSION

    digest = hashlib.sha256()
    src = ROOT / "src" / "watchdog"
    stored_by = [src / name for name in ("deadlines.py", "recompute.py", "deadline_writer.py", "case_facts.py",
                                        "outcome_log.py", "planning.py", "outbox.py", "service.py")]
    for path in sorted([*(src / "migrations" / "versions").glob("*.py"), *(src / "rules").glob("*.py"), *stored_by]):
        digest.update(path.read_bytes())
    return f"{cases}-s{seed}-g{GENERATOR_VERSION}-{digest.hexdigest()[:8]}"


def prepare_store(url: str, *, cases: int, seed: int, progress=print) -> dict:
    """Create the schema, write the national store and run the service's first poll over it
    (every deadline computed, planned, and its due alerts enqueued), as a running service has."""
    from watchdog.db import make_engine, session_scope, upgrade
    from watchdog.recompute import poll_deadlines

    from benchmarks.generate import populate

    engine = make_engine(url)
    try:
        upgrade(engine)
        started = time.perf_counter()
        rows = populate(engine, seed=seed, now=GENERATED_AT, cases=cases, progress=lambda m: progress(f"  {m}"))
        generated = time.perf_counter() - started
        progress(f"  {rows['case_file']:,} cases generated in {generated:.1f} s; computing their deadlines")
        settings = settings_for(url)
        started = time.perf_counter()
        with session_scope(engine) as session:
            computed = poll_deadlines(session, now=GENERATED_AT, settings=settings)
        first = time.perf_counter() - started
        _analyze(engine)
        progress(f"  {computed.deadlines_written:,} deadlines computed in {first:.1f} s; "
                 "the first poll plans and enqueues their alerts")
        planned, stats = poll_once(engine, settings, GENERATED_AT)
        stats = {**stats, "cases_recomputed": computed.cases_recomputed,
                 "deadlines_written": computed.deadlines_written, "status_changes": computed.status_changes}
    finally:
        engine.dispose()
    return {"rows": rows, "generate_seconds": generated, "first_seconds": first, "first_plan_seconds": planned,
            "first_stats": stats}


def _analyze(engine) -> None:
    """Fresh planner statistics, as autovacuum would make (it is off on some machines, this one
    included; without them PostgreSQL plans the digest's queries over a bulk-loaded table as if
    it were empty)."""
    from sqlalchemy import text

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _pg_admin():
    from watchdog.db import make_engine

    return make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _pg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def _drop_pg(admin, name: str) -> None:
    from sqlalchemy import text

    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _drop_stale_template(admin, name: str) -> None:
    """Drop an older store's template unless another run is copying it right now (then it stays
    until a later run finds it idle): never pull a database from under a concurrent run."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    except DBAPIError:
        pass


def discard_working_copy(url: str) -> None:
    """Drop this run's copy of the store (its PostgreSQL database or SQLite file)."""
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{url.removeprefix('sqlite:///')}{suffix}").unlink(missing_ok=True)
        return
    admin = _pg_admin()
    try:
        _drop_pg(admin, PG_RUN_DB)
    finally:
        admin.dispose()


def working_copy(db: str, *, cases: int, seed: int, regenerate: bool, progress=print) -> tuple[str, dict]:
    """A fresh copy of the cached store (generating it first if needed): (URL, store info)."""
    from sqlalchemy import text

    key = store_key(cases, seed)
    OUT.mkdir(parents=True, exist_ok=True)
    meta_path = OUT / f"{db}-{key}.json"
    if db == "sqlite":
        cached = OUT / f"national-{key}.db"
        if regenerate or not (cached.exists() and meta_path.exists()):
            for old in OUT.glob(f"national-{cases}-s{seed}-*.db"):
                old.unlink()
            building = cached.with_suffix(".building.db")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{building}{suffix}").unlink(missing_ok=True)
            progress(f"generating the SQLite store {cached.name}")
            info = prepare_store(f"sqlite:///{building}", cases=cases, seed=seed, progress=progress)
            _checkpoint(f"sqlite:///{building}")
            building.rename(cached)
            meta_path.write_text(json.dumps(info))
        work = OUT / f"work-{RUN_ID}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(cached, work)
        return f"sqlite:///{work}", json.loads(meta_path.read_text())
    admin = _pg_admin()
    try:
        template = f"watchdog_bench_tpl_{key.replace('-', '_')}"
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": template}).first()
        if regenerate or not (exists and meta_path.exists()):
            with admin.connect() as conn:
                stale = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                     {"p": f"watchdog_bench_tpl_{cases}_s{seed}_%"}).scalars().all()
            for name in stale:
                _drop_stale_template(admin, name)
            building = f"{template}_building"
            _drop_pg(admin, building)
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{building}"'))
            progress(f"generating the PostgreSQL store {template}")
            info = prepare_store(_pg_url(building), cases=cases, seed=seed, progress=progress)
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{template}"'))
            meta_path.write_text(json.dumps(info))
        _drop_pg(admin, PG_RUN_DB)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{PG_RUN_DB}" TEMPLATE "{template}"'))
        url = _pg_url(PG_RUN_DB)
        from watchdog.db import make_engine

        engine = make_engine(url)
        with engine.connect() as conn:  # fresh statistics for the planner, as autovacuum would
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        engine.dispose()
        return url, json.loads(meta_path.read_text())
    finally:
        admin.dispose()


def _checkpoint(url: str) -> None:
    from sqlalchemy import text

    from watchdog.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
