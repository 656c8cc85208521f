"""The import benchmark's floor stores what ``watchdog import`` stores: the same rows, cell for cell,
in the same tables (else its ratio would compare unlike work)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generate import populate  # noqa: E402
from benchmarks.intake import _export_queries, _floor_load, empty_database, export_store  # noqa: E402
from watchdog.db import make_engine, upgrade  # noqa: E402
from watchdog.intake.schemas import ENTITIES  # noqa: E402
from watchdog.intake.stream import FileStream  # noqa: E402
from watchdog.intake.upsert import import_records  # noqa: E402
from watchdog.settings import load_settings  # noqa: E402

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _contents(url: str) -> dict[str, list[tuple]]:
    """Every imported table's rows by ext_id, references as the ext_ids they point to."""
    engine = make_engine(url)
    out = {}
    try:
        with Session(engine) as session:
            ext = {name: dict(session.execute(select(spec.table.id, spec.table.ext_id)).all())
                   for name, spec in ENTITIES.items()}
            for name, spec in ENTITIES.items():
                table = spec.table.__table__
                ref_columns = {column: target for target, column in spec.refs.values()}
                # The recompute after the import clears the dirty marks (and on SQLite counts a version).
                skip = {"id", "facts_changed_at", "dirty", "facts_version"}
                rows = []
                for row in session.execute(select(table)).mappings():
                    rows.append(tuple((k, ext[ref_columns[k]].get(v) if k in ref_columns else v)
                                      for k, v in sorted(row.items()) if k not in skip))
                out[name] = sorted(rows)
    finally:
        engine.dispose()
    return out


def test_the_floor_stores_what_the_import_stores(tmp_path, database_url):
    """The export of a small generated store (a SQLite file) loaded both ways into two new empty
    databases on the suite's database server."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    engine = make_engine(source)
    upgrade(engine)
    populate(engine, seed=3, now=NOW, cases=60, progress=lambda m: None)
    engine.dispose()
    folder = tmp_path / "export"
    counts = export_store(source, folder)
    assert counts["cases"] == 60 and counts["notifications"] > 0 and counts["follow_ups"] > 0
    files = [name for name, _c, _q in _export_queries()]
    with empty_database(database_url, "testfloor") as floor_url, \
            empty_database(database_url, "testimport") as import_url:
        rows = _floor_load(floor_url, folder, files)
        assert rows == sum(counts.values())
        engine = make_engine(import_url)
        try:
            import_records(engine, FileStream([folder / f"{n}.csv" for n in files]), now=NOW,
                           settings=load_settings(database_url=import_url))
        finally:
            engine.dispose()
        floor, imported = _contents(floor_url), _contents(import_url)
        engine = make_engine(floor_url)
        try:
            with engine.connect() as conn:
                floor_cases = [tuple(r._mapping.items()) for r in conn.execute(select(ENTITIES["cases"].table.__table__))]
        finally:
            engine.dispose()
    for name in files:
        assert floor[name] == imported[name], name
    assert all(dict(row)["dirty"] is True for row in floor_cases), "a loaded case waits for its first computation"
    assert sum(len(v) for v in floor.values()) == rows


def test_the_import_and_ingest_phases_run_the_real_processes_against_their_floors(tmp_path, monkeypatch):
    """Both phases end to end on a small store (the real ``watchdog import`` and ``watchdog serve``
    processes), so a broken phase shows here and not 20 minutes into a national run."""
    from benchmarks import intake

    source = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(source)
    upgrade(engine)
    populate(engine, seed=5, now=NOW, cases=1_200, progress=lambda m: None)
    engine.dispose()
    monkeypatch.setattr(intake, "INGEST_BATCHES", 2)
    imported = intake.phase_import(source)["detail"]
    assert imported["records"] == sum(imported["files"].values()) and imported["files"]["cases"] == 1_200
    assert imported["deadlines_recomputed"] > 0 and imported["floor_seconds"] > 0 and imported["ratio"] > 0
    assert imported["into_bare_text_tables_s"] > 0
    ingested = intake.phase_ingest(source)["detail"]
    assert ingested["records"] == 1_200 and ingested["batches"] == 2  # 1,000 and 200
    assert ingested["upsert_p50_ms"] > 0 and ingested["floor_p50_ms"] > 0 and ingested["recompute_p50_ms"] > 0
