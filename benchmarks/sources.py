"""Benchmark: a nightly export through the drop folder and through a SQL source, against the floor.

    .venv/bin/python -m benchmarks.sources --cases 100000      # ~500,000 related rows
    .venv/bin/python -m benchmarks.sources --cases 2000        # quick

One synthetic export (teams, workers, cases and per case about 5 related rows: two notifications,
1.2 investigations, a measure, 0.8 follow-ups) is written three ways from the same facts:

- in our own format (``plain/``): the **floor** is the plain import of those files
  (``parsing.read_files`` + ``upsert.import_records``, deadlines recomputed), what
  ``watchdog import`` does;
- in the made-up vendor's format of ``examples/mappings/sagsflow.toml`` (its column names, a date
  and a time column per instant, its values, CPR and name columns to drop): the **drop folder**
  phase lists the folder, hashes and claims the batch, reads it through the mapping, imports it
  and moves it to processed/ with a receipt (``drop_folder.poll_drop_folder``);
- in a MariaDB database with the vendor's views (``wd_bench_sources``, typed columns): the **SQL
  source** phase is the nightly full read (``sql_source.read_sql_source(full=True)``).

Each phase runs in its own process on a fresh, migrated SQLite store and ends with the same store
(checked by counting every entity). Printed: the phase process's CPU seconds, × floor and rows/s
on them (on a shared machine the wall clock moves with everyone else's work), the wall seconds,
and the peak RSS. The SQL source's CPU time leaves out the MariaDB server's own work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchdog.clock import LOCAL_TZ, to_local

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MAPPING = ROOT / "examples" / "mappings" / "sagsflow.toml"
MARIADB = os.environ.get("WATCHDOG_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
VENDOR_DB = "wd_bench_sources"
NOW = datetime.fromisoformat("2026-12-01T06:00:00+00:00")
NIGHT = datetime(2026, 12, 1, 1, 0)  # the vendor's change time (naive local, as a DATETIME holds it)
ENTITIES = ("teams", "workers", "cases", "notifications", "investigations", "measures", "follow_ups")
PHASES = ("floor", "drop_folder", "sql_source")
KINDS = ("support", "placement_consent", "placement_no_consent", "youth_crime", "other")


def facts(cases: int, seed: int = 1) -> dict[str, list[dict]]:
    """The export's records in our field names, with Python values."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {name: [] for name in ENTITIES}
    n_teams = max(2, cases // 500)
    per_team = 15
    for t in range(n_teams):
        out["teams"].append({"ext_id": f"T-{t}", "name": f"Team {t}", "duty_email": f"vagt{t}@kommune.example.dk"})
        for w in range(per_team):
            out["workers"].append({"ext_id": f"W-{t}-{w}", "name": f"Medarbejder {t}-{w}",
                                   "email": f"w{t}.{w}@kommune.example.dk", "team": f"T-{t}",
                                   "role": "leader" if w == 0 else "caseworker", "fte": 1.0, "active": True})
    start = NOW - timedelta(days=3 * 365)
    for c in range(cases):
        t = rng.randrange(n_teams)
        worker = f"W-{t}-{rng.randrange(1, per_team)}"
        # Office hours (08–13 local), and every later fact a whole number of days or a few hours on:
        # no local time falls in the night of a DST change (missing or ambiguous times are refused).
        day = to_local(start + timedelta(days=rng.randrange(3 * 365 - 200))).date()
        opened = datetime(day.year, day.month, day.day, rng.randrange(8, 13), rng.randrange(60),
                          tzinfo=LOCAL_TZ).astimezone(UTC)
        case = f"C-{c}"
        out["cases"].append({"ext_id": case, "team": f"T-{t}", "worker": worker, "opened_at": opened})
        for j in range(2):
            received = opened + timedelta(days=j * 30, minutes=rng.randrange(240))
            out["notifications"].append({
                "ext_id": f"N-{c}-{j}", "case": case, "received_at": received,
                "professional_notifier": rng.random() < 0.6, "child_in_support": j == 1,
                "assessed_at": received + timedelta(hours=rng.randrange(2, 7)), "assessed_by": worker})
        for k in range(2 if rng.random() < 0.2 else 1):
            aware = opened + timedelta(days=k * 40)
            done = aware + timedelta(days=rng.randrange(60, 150))
            out["investigations"].append({
                "ext_id": f"B-{c}-{k}", "case": case, "notification": f"N-{c}-0", "kind": "new" if k == 0 else "update",
                "aware_at": aware, "completed_at": done if done < NOW else None})
        decided = opened + timedelta(days=rng.randrange(20, 120))
        effected = decided + timedelta(days=7)
        out["measures"].append({"ext_id": f"F-{c}", "case": case, "kind": rng.choice(KINDS),
                                "legal_basis": "BL § 32, stk. 1, nr. 3", "decided_at": decided,
                                "effected_at": effected, "child_conversation_at": decided - timedelta(days=2)})
        if rng.random() < 0.8:
            out["follow_ups"].append({"ext_id": f"O-{c}", "measure": f"F-{c}",
                                      "performed_at": effected + timedelta(days=rng.randrange(60, 100))})
    return out


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nej"
    if isinstance(value, datetime):
        return f"{to_local(value):%d-%m-%Y %H:%M}"
    return str(value).replace(".", ",") if isinstance(value, float) else str(value)


def write_plain(data: dict[str, list[dict]], folder: Path) -> None:
    from watchdog.intake.schemas import ENTITIES as SPECS

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in data.items():
        fields = [f for f in SPECS[name].fields if any(f in r for r in rows[:50])]
        with open(folder / f"{name}.csv", "w", encoding="utf-8") as out:
            out.write(";".join(fields) + "\n")
            for r in rows:
                out.write(";".join(_text(r.get(f)) for f in fields) + "\n")


def vendor_rows(data: dict[str, list[dict]]):
    """Per entity: the vendor's table name, columns and rows (typed), as the mapping describes them."""
    from watchdog.intake.sources.mapping import load_mapping

    mapping = load_mapping(MAPPING)
    for entity in mapping.ordered():
        rows = data.get(entity.name, [])
        if not rows:
            continue
        back = {v: {ours: vendor for vendor, ours in table.items()} for v, table in entity.values.items()}
        ours_to_col = {target: entity.shown[norm] for norm, target in entity.columns.items()}
        columns = [*ours_to_col.values()]
        for parts in entity.instants:
            columns += [parts.date_column] + ([parts.time_column] if parts.time_column else [])
        dropped = sorted(entity.drop)
        columns += dropped + [entity.changed_column]
        out = []
        for r in rows:
            row: dict = {}
            for field, col in ours_to_col.items():
                value = r.get(field)
                if field in back and value is not None:
                    key = value if isinstance(value, str) else ("ja" if value else "nej")
                    value = next((v for k, v in back[field].items() if k == key), value)
                row[col] = value
            for parts in entity.instants:
                value = r.get(parts.field)
                local = to_local(value).replace(tzinfo=None) if value else None
                row[parts.date_column] = local.date() if local else None
                if parts.time_column:
                    row[parts.time_column] = local.time() if local else None
            for col in dropped:
                row[col] = "xxxxxx-xxxx"
            row[entity.changed_column] = NIGHT
            out.append(row)
        yield entity, columns, out


def _vendor_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{(to_local(value) if value.tzinfo else value):%d-%m-%Y %H:%M}"
    if hasattr(value, "strftime") and hasattr(value, "year"):
        return value.strftime("%d-%m-%Y")
    if hasattr(value, "strftime"):
        return value.strftime("%H:%M")
    return _text(value)


def write_vendor_files(data, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for entity, columns, rows in vendor_rows(data):
        name = entity.files[0].replace("*", "")
        with open(folder / name, "w", encoding="utf-8") as out:
            out.write(";".join(columns) + "\n")
            for r in rows:
                out.write(";".join(_vendor_text(r[c]) for c in columns) + "\n")
    (folder / "READY.done").write_text("", encoding="utf-8")


def load_vendor_db(data, url: str) -> None:
    """The vendor's reporting database: one typed table per view name of the mapping."""
    from sqlalchemy import DECIMAL, Column, Date, DateTime, MetaData, String, Table, Time, create_engine

    from watchdog.intake.schemas import field_kind, normalize_column

    engine = create_engine(url)
    meta = MetaData()
    for entity, columns, rows in vendor_rows(data):
        kinds = {}
        for norm, target in entity.columns.items():
            kind = field_kind(entity.spec.model, target)
            kinds[entity.shown[norm]] = {"instant": DateTime, "date": Date, "decimal": DECIMAL(4, 2)}.get(kind, String(200))
        for parts in entity.instants:
            kinds[parts.date_column] = Date
            if parts.time_column:
                kinds[parts.time_column] = Time
        kinds[entity.changed_column] = DateTime
        table = Table(entity.view, meta, *[Column(normalize_column(c), kinds.get(c, String(200))) for c in columns])
        meta.drop_all(engine, tables=[table])
        meta.create_all(engine, tables=[table])
        with engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(table.insert(), [{normalize_column(k): v for k, v in r.items()}
                                              for r in rows[start:start + 5000]])
    engine.dispose()


# --- phases (each in its own process) ---------------------------------------------------------

def _fresh_store(path: Path):
    from watchdog.db import make_engine, upgrade

    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


def _counts(engine) -> dict[str, int]:
    from sqlalchemy import func, select

    from watchdog.intake.schemas import ENTITIES as SPECS

    with engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(SPECS[name].table)).scalar_one()
                for name in ENTITIES}


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_phase(phase: str, work: Path, *, vendor_url: str | None = None) -> dict:
    from watchdog.settings import load_settings

    engine = _fresh_store(work / f"{phase}.db")
    cpu_started = time.process_time()
    if phase == "floor":
        from watchdog.intake.parsing import read_files
        from watchdog.intake.upsert import import_records

        settings = load_settings(None)
        files = sorted((work / "plain").glob("*.csv"))
        started = time.perf_counter()
        records, problems = read_files(files)
        result = import_records(engine, records, now=NOW, settings=settings, file_problems=problems)
        seconds = time.perf_counter() - started
        rows = len(records)
    elif phase == "drop_folder":
        from watchdog.intake.sources.drop_folder import poll_drop_folder

        drop = work / "drop"
        shutil.rmtree(drop, ignore_errors=True)
        shutil.copytree(work / "vendor", drop)
        settings = load_settings(None, intake={"drop_folder": str(drop), "drop_mapping": str(MAPPING)})
        started = time.perf_counter()
        [report] = poll_drop_folder(engine, settings, now=NOW, replica="bench")
        seconds = time.perf_counter() - started
        assert report.outcome == "imported", (report.outcome, report.problems[:3])
        rows = report.rows
    else:
        from watchdog.intake.sources.sql_source import read_sql_source

        settings = load_settings(None, intake={"sql_sources": [
            {"name": "bench", "url": vendor_url, "mapping": str(MAPPING)}]})
        started = time.perf_counter()
        run = read_sql_source(engine, settings, settings.intake.sql_sources[0], now=NOW, replica="bench",
                              full=True)
        seconds = time.perf_counter() - started
        assert run.outcome == "imported", (run.outcome, run.detail, run.problems[:3])
        rows = run.rows
    cpu = time.process_time() - cpu_started
    counts = _counts(engine)
    engine.dispose()
    return {"phase": phase, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "rows": rows,
            "counts": counts,
            "peak_rss_mb": round(_peak_rss_mb())}


def prepare(cases: int, work: Path, *, vendor_url: str, progress=print) -> int:
    progress(f"generating {cases:,} cases …")
    data = facts(cases)
    shutil.rmtree(work, ignore_errors=True)
    write_plain(data, work / "plain")
    write_vendor_files(data, work / "vendor")
    progress("loading the vendor's reporting database …")
    load_vendor_db(data, vendor_url)
    return sum(len(v) for v in data.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sources", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    vendor_url = f"{MARIADB}/{VENDOR_DB}?charset=utf8mb4"
    if args.phase:
        print(json.dumps(run_phase(args.phase, Path(args.work), vendor_url=vendor_url)))
        return 0
    from sqlalchemy import create_engine, text

    server = create_engine(MARIADB + "/")
    with server.begin() as conn:
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS {VENDOR_DB} CHARACTER SET utf8mb4"))
    server.dispose()
    work = OUT / f"sources-{args.cases}"
    total = prepare(args.cases, work, vendor_url=vendor_url)
    results = []
    for phase in PHASES:
        print(f"phase {phase} …", flush=True)
        out = subprocess.run([sys.executable, "-m", "benchmarks.sources", "--phase", phase, "--work", str(work)],
                             capture_output=True, text=True, cwd=ROOT, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    # On a shared machine the wall clock moves with the other work; the CPU time of the phase's own
    # process (ours, plus the database server's for the SQL source is not in it) moves much less.
    floor = results[0]["cpu_seconds"]
    counts = results[0]["counts"]
    assert all(r["counts"] == counts for r in results), [r["counts"] for r in results]
    lines = [f"{args.cases:,} cases, {total - counts['cases'] - counts['teams'] - counts['workers']:,} related rows "
             f"({', '.join(f'{k} {v:,}' for k, v in counts.items())}); every phase ends with the same store",
             "", "| path | CPU seconds | × floor (CPU) | rows/s (CPU) | wall seconds | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    names = {"floor": "floor: plain import of the same export in our format",
             "drop_folder": "drop folder (vendor files through the mapping)",
             "sql_source": "SQL source (MariaDB views, nightly full read)"}
    for r in results:
        lines.append(f"| {names[r['phase']]} | {r['cpu_seconds']:.1f} | {r['cpu_seconds'] / floor:.2f} | "
                     f"{r['rows'] / r['cpu_seconds']:,.0f} | {r['seconds']:.1f} | {r['peak_rss_mb']} |")
    text_out = "\n".join(lines)
    print(text_out)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    (OUT / f"sources-{stamp}.md").write_text(text_out + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
