"""The streaming import: files read as they are imported, in dependency order, chunk by chunk in
one transaction. A refused record in a late chunk stores nothing; the same import twice writes
nothing and marks no case dirty."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, func
from sqlmodel import Session, select

from watchdog.casestore import Case, Notification, Team
from watchdog.errors import ValidationFailed
from watchdog.intake import upsert
from watchdog.intake.stream import FileStream
from watchdog.intake.upsert import import_records
from watchdog.settings import load_settings

NOW = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)
N = upsert.CHUNK + 500  # more than one chunk


def export(folder: Path, *, bad_row: int | None = None) -> list[Path]:
    """Teams, cases and notifications; the files listed children first (the stream orders them)."""
    folder.mkdir(exist_ok=True)
    (folder / "teams.csv").write_text("ext_id;name\nT-1;Team 1\n", encoding="utf-8")
    rows = []
    for i in range(N):
        opened = "31-02-2024 09:00" if bad_row is not None and i + 2 == bad_row else "01-03-2024 09:00"
        rows.append(f"S-{i:05d};T-1;{opened}\n")
    (folder / "cases.csv").write_text("ext_id;team;opened_at\n" + "".join(rows), encoding="utf-8")
    (folder / "notifications.csv").write_text(
        "ext_id;case;received_at;child_in_support\n"
        + "".join(f"N-{i:05d};S-{i:05d};02-03-2024 10:00;nej\n" for i in range(N)), encoding="utf-8")
    return [folder / "notifications.csv", folder / "cases.csv", folder / "teams.csv"]


def count(engine, table) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(table)).one()


def test_a_bad_record_in_a_late_chunk_stores_nothing_and_is_named_by_row_and_field(engine, tmp_path):
    bad_row = N  # spreadsheet row: in the second chunk of cases, after the first was written
    files = export(tmp_path / "x", bad_row=bad_row)
    with pytest.raises(ValidationFailed) as refused:
        import_records(engine, FileStream(files), now=NOW, settings=load_settings(None))
    problems = [(p.source, p.record, p.field) for p in refused.value.problems]
    # The bad case, and its notification, whose case is then neither stored nor in the import.
    assert problems == [("cases.csv", str(bad_row), "opened_at"), ("notifications.csv", str(bad_row), "case")]
    assert (count(engine, Team), count(engine, Case), count(engine, Notification)) == (0, 0, 0)


def test_the_same_import_twice_writes_nothing_and_marks_no_case_dirty(engine, tmp_path):
    files = export(tmp_path / "x")
    settings = load_settings(None)
    first = import_records(engine, FileStream(files), now=NOW, settings=settings)
    assert first.counts["cases"].created == N and first.counts["notifications"].created == N
    assert first.deadlines_recomputed  # and so every case's dirty mark is cleared
    with Session(engine) as s:
        before = {c.ext_id: (c.facts_version, c.facts_changed_at, c.dirty) for c in s.exec(select(Case))}
    assert not any(dirty for _v, _at, dirty in before.values())

    writes: list[str] = []

    def watch(_conn, _cursor, statement, _params, _context, _many):
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        again = import_records(engine, FileStream(files), now=datetime(2024, 12, 3, tzinfo=UTC), settings=settings)
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert writes == []  # no row rewritten, no dirty mark, no warning touched
    assert again.counts["cases"].unchanged == N and again.counts["notifications"].unchanged == N
    assert again.affected_case_ids == set() and again.deadlines_recomputed is None
    with Session(engine) as s:
        assert {c.ext_id: (c.facts_version, c.facts_changed_at, c.dirty) for c in s.exec(select(Case))} == before


def test_a_jsonl_file_of_mixed_entities_out_of_order_streams_in_dependency_order(engine, tmp_path):
    lines = [{"entity": "notifications", "ext_id": "N-1", "case": "S-1", "received_at": "2024-03-02T10:00+01:00"},
             {"entity": "cases", "ext_id": "S-1", "team": "T-1", "opened_at": "2024-03-01T09:00+01:00"},
             {"entity": "teams", "ext_id": "T-1", "name": "Team 1"}]
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    stream = FileStream([path, tmp_path / "missing.csv"])
    assert [r.entity for r in stream()] == ["?", "teams", "cases", "notifications"]  # the missing file first
    result = import_records(engine, FileStream([path]), now=NOW, settings=load_settings(None))
    assert {n: c.created for n, c in result.counts.items() if c.created} == {"teams": 1, "cases": 1,
                                                                            "notifications": 1}


def test_a_missing_file_in_a_stream_refuses_the_import_and_is_named(engine, tmp_path):
    files = export(tmp_path / "x")
    with pytest.raises(ValidationFailed) as refused:
        import_records(engine, FileStream([*files, tmp_path / "visits.csv"]), now=NOW, settings=load_settings(None))
    assert [(p.source, p.field) for p in refused.value.problems] == [("visits.csv", "(file)")]
    assert count(engine, Case) == 0


def test_the_fused_sqlite_instant_processor_writes_what_the_column_types_would():
    """writing._sqlite_instant stands for UTCDateTime's and SQLite DATETIME's bind processors in one
    step: the same text for every instant (any offset, early years, microseconds) and for None."""
    import random
    from datetime import timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from watchdog.intake.upsert_sql import sqlite_instant as _sqlite_instant

    dialect = sqlite.dialect()
    column_type = Case.__table__.c.opened_at.type
    generic = column_type.dialect_impl(dialect).bind_processor(dialect)
    rng = random.Random(19)
    samples = [None, datetime(1, 1, 1, 12, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
               datetime(2024, 10, 27, 2, 30, tzinfo=timezone(timedelta(hours=2)))]
    for _ in range(2000):
        offset = timezone(timedelta(minutes=rng.randrange(-14 * 60, 14 * 60 + 1)))
        samples.append(datetime(rng.randrange(2, 9999), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
                                rng.randrange(60), rng.randrange(60), rng.choice([0, rng.randrange(10 ** 6)]),
                                tzinfo=offset))
    assert [_sqlite_instant(v) for v in samples] == [generic(v) for v in samples]
    with pytest.raises(ValueError):
        _sqlite_instant(datetime(2024, 1, 1))


def test_lookups_find_rows_by_any_number_of_keys_bound_as_one_parameter(engine):
    """intake.lookup: the keys as one array (PostgreSQL) or JSON list (SQLite): more keys than an
    IN list may hold, keys that are not stored, non-ASCII and quoting characters, no keys at all."""
    from watchdog.intake.lookup import Lookups

    names = [f"T-{i}" for i in range(1500)] + ['Hold "Øst"', "T-\\'æ"]
    with Session(engine) as s:
        s.add_all(Team(ext_id=n, name=n) for n in names)
        s.commit()
        T = Team.__table__
        lookups = Lookups(s)
        found = lookups.mapping(T.c.ext_id, T.c.id, [*names, "T-missing"])
        assert set(found) == set(names)
        some = [found[n] for n in names[-3:]]
        assert sorted(r.ext_id for r in lookups.rows(T.c.id, (T.c.id, T.c.ext_id), some)) == sorted(names[-3:])
        assert lookups.rows(T.c.ext_id, (T.c.id,), []) == []
