"""The importer fuzzed with malformed rows: no crash, no partial write, every error named."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func
from sqlmodel import Session, select

from watchdog.casestore import Case, Team
from watchdog.errors import ValidationFailed
from watchdog.intake.parsing import read_files
from watchdog.intake.upsert import import_records
from watchdog.settings import load_settings

NOW = datetime(2024, 12, 2, tzinfo=UTC)
COLUMNS = ["ext_id", "team", "worker", "birth_date", "opened_at", "closed_at", "link"]
# Cells that are right, wrong in an interesting way, or arbitrary text.
cell = st.one_of(
    st.sampled_from(["", "T1", "S-1", "01-02-2024", "01-02-2024 10:00", "31-02-2024", "27-10-2024 02:30",
                     "2024-02-01T10:00+01:00", "2024-02-01T10:00", "0,5", "ja", "010203-1234", "https://x.dk",
                     "01-01-0001 00:00", "99-99-9999", "\ufeff", '"', ";", "\r"]),
    st.text(max_size=12),
)
row = st.lists(cell, min_size=0, max_size=len(COLUMNS) + 2)


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(row, min_size=1, max_size=6), encoding=st.sampled_from(["utf-8-sig", "cp1252"]),
       header=st.lists(st.sampled_from(COLUMNS + ["cpr", "navn", "colour"]), min_size=1, max_size=8))
def test_malformed_case_rows_never_crash_and_never_store_part_of_a_batch(engine, tmp_path_factory, rows,
                                                                          encoding, header):
    settings = load_settings(None)
    with Session(engine) as s:
        if s.exec(select(Team).where(Team.ext_id == "T1")).first() is None:
            s.add(Team(ext_id="T1", name="Team 1"))
            s.commit()
        cases_before = s.exec(select(func.count()).select_from(Case)).one()
    text = ";".join(header) + "\n" + "\n".join(";".join(r) for r in rows) + "\n"
    path = tmp_path_factory.mktemp("fuzz") / "cases.csv"
    path.write_bytes(text.encode(encoding, errors="replace"))
    records, file_problems = read_files([path])
    try:
        result = import_records(engine, records, now=NOW, settings=settings, file_problems=file_problems,
                                dry_run=True)
    except ValidationFailed as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.source == "cases.csv" and p.record and p.field and p.reason, p
    else:
        assert not file_problems
        assert result.counts["cases"].total == len({r.values.get("ext_id") for r in records})
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Case)).one() == cases_before


@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=5))
def test_a_batch_with_any_bad_row_stores_none_of_its_good_rows(engine, tmp_path_factory, rows):
    settings = load_settings(None)
    with Session(engine) as s:
        if s.exec(select(Team).where(Team.ext_id == "T1")).first() is None:
            s.add(Team(ext_id="T1", name="Team 1"))
            s.commit()
        before = set(s.exec(select(Case.ext_id)).all())
    good = "ok-1;T1;01-02-2024 10:00"
    text = "ext_id;team;opened_at\n" + good + "\n" + "\n".join(";".join(r) for r in rows) + "\n"
    path = tmp_path_factory.mktemp("fuzz") / "cases.csv"
    path.write_bytes(text.encode("utf-8"))
    records, file_problems = read_files([path])
    try:
        import_records(engine, records, now=NOW, settings=settings, file_problems=file_problems)
        stored_all = True
    except ValidationFailed:
        stored_all = False
    with Session(engine) as s:
        after = set(s.exec(select(Case.ext_id)).all())
    if stored_all:
        assert "ok-1" in after
    else:
        assert after == before
