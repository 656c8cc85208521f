"""The import's write path (intake.writing, intake.upsert_sql, intake.origins): every value is
stored as SQLAlchemy's column types would bind it, on both databases and on each way a chunk is
written (a first import's straight COPY or multi-row VALUES, the staged upsert of changed rows);
references to records of the same import are resolved from memory; a concurrent writer's row
with the same ext_id is never taken for one this import inserted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlmodel import Session

from watchdog.casestore import Case, Team
from watchdog.intake import upsert, upsert_sql
from watchdog.intake.lookup import Lookups
from watchdog.intake.origins import Origins
from watchdog.intake.schemas import ENTITIES, PARTICIPANTS_FIELD
from watchdog.intake.upsert import import_valid
from watchdog.intake.writing import ChunkWriter, ValidRecord, _columns
from watchdog.settings import load_settings

NOW = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))
MINUS_14 = timezone(timedelta(hours=-14))


def valid(entity: str, values: dict, number: int = 2) -> ValidRecord:
    spec = ENTITIES[entity]
    model = spec.model.model_validate(values)
    return ValidRecord(spec, f"{entity}.csv", str(number), model, frozenset(model.model_fields_set))


def export(changed: bool = False) -> list[ValidRecord]:
    """Every entity, with the values a conversion could get wrong: instants with microseconds and
    offsets far from UTC (the UTC date another day), NULLs, booleans both ways, floats that do not round, enums,
    dates, quotes and non-ASCII text. ``changed``: the same records, some values changed."""
    fte = [1 / 3, 0.1, 0.0, 1.0]
    if changed:
        fte[0] = 0.7
    return [
        valid("teams", {"ext_id": "T-1", "name": 'Hold "Øst" \\ æøå'}),
        valid("teams", {"ext_id": "T-2", "name": "Team 2", "duty_email": "vagt@example.dk"}),
        *(valid("workers", {"ext_id": f"W-{i}", "name": f"Worker {i}", "email": f"w{i}@example.dk",
                            "team": "T-1" if i % 2 else None, "role": ["leader", "caseworker"][i % 2],
                            "fte": fte[i], "active": bool(i % 2)}, i + 2) for i in range(4)),
        valid("absences", {"ext_id": "A-1", "worker": "W-1", "starts_on": "2024-12-01", "ends_on": "2024-12-24",
                           "substitute": "W-3"}),
        valid("cases", {"ext_id": "S-1", "team": "T-1", "worker": "W-1", "birth_date": "2008-02-29",
                        "opened_at": datetime(2024, 3, 1, 0, 30, 0, 123456, tzinfo=PLUS_2),
                        "closed_at": None}),
        valid("cases", {"ext_id": "S-2", "team": "T-2", "opened_at": datetime(1990, 1, 2, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=14))),
                        "closed_at": datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=MINUS_14)
                        if not changed else datetime(2025, 1, 1, tzinfo=UTC),
                        "link": "https://sag.example.dk/S-2?x='y'"}, 3),
        valid("notifications", {"ext_id": "N-1", "case": "S-1", "received_at": "2024-03-02T10:00:00.000001+01:00",
                                "assessed_by": "W-3", "child_in_support": True, "professional_notifier": changed,
                                PARTICIPANTS_FIELD: ["W-1", "W-3"] if not changed else ["W-3"]}),
        valid("investigations", {"ext_id": "I-1", "case": "S-1", "notification": "N-1", "kind": "update",
                                 "aware_at": datetime(2024, 3, 3, tzinfo=UTC)}),
        valid("measures", {"ext_id": "M-1", "case": "S-1", "kind": "placement_consent", "legal_basis": "BL § 46",
                           "decided_at": datetime(2024, 4, 1, 8, tzinfo=UTC), "investigation": "I-1",
                           "plan_required": changed}),
        valid("follow_ups", {"ext_id": "F-1", "measure": "M-1", "performed_at": datetime(2024, 6, 1, tzinfo=UTC),
                             "next_planned_on": date(2024, 12, 1) if not changed else None}),
        valid("visits", {"ext_id": "V-1", "measure": "M-1", "visited_at": datetime(2024, 7, 1, tzinfo=UTC),
                         "child_conversation": False}),
    ]


def stored_as_bound(engine, records: list[ValidRecord]) -> None:
    """Each column of each record's row holds, as the driver reads it back, what SQLAlchemy's
    column type binds for the record's value (the id of the row referred to, for a reference)."""
    dialect = engine.dialect
    with engine.connect() as conn:
        for rec in records:
            table = rec.spec.table.__table__
            names = [c for _n, c in _columns(rec.spec)]
            quoted = ", ".join(f'"{c}"' for c in ["id", *names])
            raw = conn.exec_driver_sql(f'SELECT {quoted} FROM "{table.name}" WHERE ext_id = '
                                       f"{'?' if dialect.name == 'sqlite' else '%(e)s'}",
                                       (rec.ext_id,) if dialect.name == "sqlite" else {"e": rec.ext_id}).one()
            for (name, column), got in zip(_columns(rec.spec), raw[1:]):
                value = getattr(rec.data, name)
                if name in rec.spec.refs and value is not None:
                    target = ENTITIES[rec.spec.refs[name][0]].table.__table__
                    expected = conn.execute(select(target.c.id).where(target.c.ext_id == value)).scalar_one()
                else:
                    process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
                    expected = process(value) if process else value
                assert got == expected, (rec.spec.name, rec.ext_id, column, got, expected)
                assert type(got) is type(expected) or expected is None, (rec.ext_id, column, got, expected)


def test_every_value_is_stored_as_the_column_type_would_bind_it_new_and_changed(engine):
    settings = load_settings(None)
    first = import_valid(engine, export(), now=NOW, settings=settings)
    assert first.counts["cases"].created == 2 and first.counts["visits"].created == 1
    with Session(engine) as s:  # inserted by this import, after its teams: started dirty, not marked again
        assert {c.facts_version for c in s.exec(select(Case)).scalars()} == {1}
    stored_as_bound(engine, export())
    # Changed rows: on PostgreSQL through the staging table, on SQLite the same multi-row VALUES.
    again = import_valid(engine, export(changed=True), now=NOW + timedelta(days=1), settings=settings)
    assert {n: c.updated for n, c in again.counts.items() if c.updated} == {
        "workers": 1, "cases": 1, "notifications": 1, "measures": 1, "follow_ups": 1}
    stored_as_bound(engine, export(changed=True))


def test_references_to_records_of_the_import_are_resolved_without_the_database(engine, monkeypatch):
    """Only references to rows stored before the import are looked up; the rest come from the
    ids the import kept of its own records, chunk after chunk."""
    with Session(engine) as s:
        s.add(Team(ext_id="T-OLD", name="Stored before"))
        s.commit()
    looked_up: list[tuple[str, frozenset]] = []
    real = ChunkWriter._ids

    def spy(self, entity, ext_ids):
        ext_ids = frozenset(ext_ids)
        looked_up.append((entity, ext_ids))
        return real(self, entity, ext_ids)

    monkeypatch.setattr(ChunkWriter, "_ids", spy)
    monkeypatch.setattr(upsert, "CHUNK", 3)  # references across many chunks
    records = [r for r in export() if r.spec.name != "absences"]
    records.append(valid("cases", {"ext_id": "S-OLD-TEAM", "team": "T-OLD", "opened_at": NOW}, 9))
    import_valid(engine, records, now=NOW, settings=load_settings(None))
    assert looked_up == [("teams", frozenset({"T-OLD"}))]
    stored_as_bound(engine, records)


def test_origins_keep_source_row_and_id_in_one_int_or_a_tuple():
    origins = Origins()
    spec = ENTITIES["cases"]

    class Rec:
        def __init__(self, ext_id, record, source="cases.csv"):
            self.spec, self.ext_id, self.record, self.source, self.given = spec, ext_id, record, source, frozenset()

    for ext_id, record in [("a", "2"), ("b", "999999999999"), ("c", "07"), ("d", "line 4"), ("e", "0")]:
        assert origins.add(Rec(ext_id, record)) is None
    assert type(origins.by_entity["cases"]["a"]) is int and type(origins.by_entity["cases"]["c"]) is tuple
    assert origins.ids("cases", ["a", "d", "zz"]) == ({}, {"a", "d", "zz"})
    origins.set_ids("cases", [("a", 1), ("b", 2 ** 40 + 5), ("c", 0), ("d", 7), ("e", -3)])
    assert origins.ids("cases", ["a", "b", "c", "d", "e", "zz"]) == (
        {"a": 1, "b": 2 ** 40 + 5, "c": 0, "d": 7, "e": -3}, {"zz"})
    # The origin is kept whole beside the id: a duplicate still names its first occurrence.
    assert [origins.add(Rec(x, "5", "other.csv")) for x in "abcde"] == [
        ("cases.csv", "2"), ("cases.csv", "999999999999"), ("cases.csv", "07"), ("cases.csv", "line 4"),
        ("cases.csv", "0")]


def test_a_concurrent_writers_rows_of_the_same_ext_ids_are_not_taken_for_this_imports(engine, monkeypatch,
                                                                                     on_postgres):
    """Rows another writer stored after the chunk's stored rows were read (simulated: that read
    misses them): one differing (updated on conflict), one identical (left alone, not returned).
    Their ids still serve the import's references, and they are marked dirty as stored cases
    whose facts changed (new rows of this import's own start dirty: no mark needed)."""
    settings = load_settings(None)
    import_valid(engine, [valid("teams", {"ext_id": "T-1", "name": "Team 1"})], now=NOW, settings=settings)
    cases = [valid("cases", {"ext_id": f"S-{i}", "team": "T-1", "opened_at": NOW - timedelta(days=i)}, i + 2)
             for i in (1, 2, 3)]
    theirs = [valid("cases", {"ext_id": "S-1", "team": "T-1", "opened_at": NOW}), cases[1]]
    import_valid(engine, theirs, now=NOW, settings=settings)
    with Session(engine) as s:
        before = {c.ext_id: (c.id, c.facts_version) for c in s.exec(select(Case)).scalars()}
    real = Lookups.typed

    def blind(self, key, columns, keys):  # the stored cases arrive just after this read
        return [] if key.table.name == "case_file" else real(self, key, columns, keys)

    monkeypatch.setattr(Lookups, "typed", blind)
    notes = [valid("notifications", {"ext_id": f"N-{i}", "case": f"S-{i}", "received_at": NOW}, i + 2)
             for i in (1, 2, 3)]
    result = import_valid(engine, [*cases, *notes], now=NOW + timedelta(hours=1), settings=settings)
    assert result.counts["notifications"].created == 3
    with Session(engine) as s:
        after = {c.ext_id: (c.id, c.facts_version, c.opened_at) for c in s.exec(select(Case)).scalars()}
    assert after["S-1"][0] == before["S-1"][0] and after["S-2"][0] == before["S-2"][0]
    assert after["S-1"][2] == NOW - timedelta(days=1)  # the import's value, written over theirs
    # Marked: their rows are not this import's. The case this import inserted starts at version 1:
    # on PostgreSQL known as its own (xmax), not marked; on SQLite marked too, since the cases are
    # this import's first write, read before its transaction held the write lock.
    assert (after["S-1"][1], after["S-2"][1]) == (before["S-1"][1] + 1, before["S-2"][1] + 1)
    assert after["S-3"][1] == (1 if on_postgres else 2)
    stored_as_bound(engine, notes)


def test_sqlite_statements_of_a_few_rows_each_and_a_remainder(engine, monkeypatch):
    """Multi-row VALUES split by rows per statement (on PostgreSQL the COPY takes them all)."""
    monkeypatch.setattr(upsert_sql, "_SQLITE_ROWS", 7)
    records = [valid("teams", {"ext_id": "T-1", "name": "Team 1"})]
    records += [valid("cases", {"ext_id": f"S-{i:02d}", "team": "T-1", "opened_at": NOW + timedelta(microseconds=i)},
                      i + 2) for i in range(23)]
    result = import_valid(engine, records, now=NOW, settings=load_settings(None))
    assert result.counts["cases"].created == 23
    stored_as_bound(engine, records)


def test_a_failed_import_leaves_the_staging_table_usable(engine, monkeypatch):
    """A chunk that fails after its rows were staged is rolled back with them; the next import on
    the same connection stages again (PostgreSQL; on SQLite the same import, nothing staged)."""
    settings = load_settings(None)
    import_valid(engine, export(), now=NOW, settings=settings)
    real = upsert_sql.Upsert._upsert_staged

    def fail_after_staging(self, connection, cursor, rows):
        real(self, connection, cursor, rows)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(upsert_sql.Upsert, "_upsert_staged", fail_after_staging)
    if engine.dialect.name == "postgresql":
        with pytest.raises(RuntimeError):
            import_valid(engine, export(changed=True), now=NOW, settings=settings)
    monkeypatch.setattr(upsert_sql.Upsert, "_upsert_staged", real)
    again = import_valid(engine, export(changed=True), now=NOW, settings=settings)
    assert again.counts["workers"].updated == 1
    stored_as_bound(engine, export(changed=True))


def test_a_stored_row_in_a_later_chunk_of_a_first_import_is_found_and_updated(engine, monkeypatch):
    """After a chunk found nothing stored, PostgreSQL sends the next chunk of the entity as new
    without reading it first; a row stored after all fails that COPY, and the chunk then takes
    the usual way: read, compared, the stored case updated (and marked), the rest inserted."""
    settings = load_settings(None)
    import_valid(engine, [valid("teams", {"ext_id": "T-1", "name": "Team 1"}),
                          valid("cases", {"ext_id": "S-5", "team": "T-1", "opened_at": NOW}, 3)],
                 now=NOW, settings=settings)
    with Session(engine) as s:
        stored = s.exec(select(Case).where(Case.ext_id == "S-5")).scalar_one()
        stored_id, version = stored.id, stored.facts_version
    monkeypatch.setattr(upsert, "CHUNK", 3)
    cases = [valid("cases", {"ext_id": f"S-{i}", "team": "T-1", "opened_at": NOW - timedelta(days=i)}, i + 2)
             for i in range(7)]
    result = import_valid(engine, cases, now=NOW + timedelta(hours=1), settings=settings)
    assert (result.counts["cases"].created, result.counts["cases"].updated) == (6, 1)
    with Session(engine) as s:
        again = s.exec(select(Case).where(Case.ext_id == "S-5")).scalar_one()
        assert (again.id, again.opened_at, again.facts_version) == (stored_id, NOW - timedelta(days=5), version + 1)
    stored_as_bound(engine, cases)
