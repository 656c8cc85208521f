"""Issue 12 point 1(a): dates and instants outside a plausible range, or without a UTC form, are
refused at intake (file import and HTTP API) by record and field; nothing is stored, and the poll
never meets them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from test_api import api, bearer  # noqa: F401 (the fixture)
from test_cli import run_cli
from watchdog import service
from watchdog.casestore import Case, Team
from watchdog.errors import ValidationFailed
from watchdog.intake.parsing import read_files
from watchdog.intake.upsert import import_records
from watchdog.settings import load_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOW = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)


def examples_with(tmp_path: Path, file: str, column: str, value: str) -> list[Path]:
    """The example CSV files, with ``column`` of the first row of ``file`` set to ``value``."""
    for path in EXAMPLES.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / file
    header, first, *rest = target.read_text(encoding="utf-8-sig").splitlines()
    cells = first.split(";")
    cells[header.split(";").index(column)] = value
    target.write_text("\n".join([header, ";".join(cells), *rest]) + "\n", encoding="utf-8")
    return sorted(tmp_path.glob("*.csv"))


def refused(engine, paths, settings=None) -> list[tuple[str, str, str, str]]:
    records, file_problems = read_files(paths)
    with pytest.raises(ValidationFailed) as caught:
        import_records(engine, records, now=NOW, settings=settings or load_settings(None),
                       file_problems=file_problems)
    return [(p.source, p.record, p.field, p.reason) for p in caught.value.problems]


@pytest.mark.parametrize(("file", "column", "value"), [
    ("follow_ups.csv", "next_planned_on", "31-12-9999"),
    ("investigations.csv", "completed_at", "31-12-9999 12:00"),
    ("measures.csv", "decided_at", "31-12-9999 12:00"),
    ("measures.csv", "effected_at", "31-12-9999"),
    ("visits.csv", "visited_at", "31-12-9999 10:00"),
    ("cases.csv", "opened_at", "31-12-1989 10:00"),
])
def test_a_date_outside_the_plausible_range_is_refused_by_file_row_and_field(engine, tmp_path, file, column, value):
    problems = refused(engine, examples_with(tmp_path, file, column, value))
    assert [(source, record, field) for source, record, field, _ in problems] == [(file, "2", column)]
    assert "outside the plausible range 01-01-1990 to 02-12-2034" in problems[0][3]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Team)).one() == 0
    # The poll has nothing to trip over.
    assert service.poll(engine, load_settings(None), now=NOW).ok


def test_the_plausible_range_is_configurable(engine, tmp_path):
    settings = load_settings(None, intake={"earliest_date": "2024-03-05", "latest_years_ahead": 1})
    paths = examples_with(tmp_path, "follow_ups.csv", "next_planned_on", "03-12-2025")
    problems = refused(engine, paths, settings)
    # S-2024-0001 was opened on 04-03-2024, the day before the configured first one; the
    # follow-up planned a year and a day ahead is after the last one.
    assert ("follow_ups.csv", "2", "next_planned_on") in {p[:3] for p in problems}
    assert ("cases.csv", "2", "opened_at") in {p[:3] for p in problems}
    assert all("05-03-2024 to 02-12-2025" in p[3] for p in problems)
    records, _ = read_files(examples_with(tmp_path, "follow_ups.csv", "next_planned_on", "01-12-2025"))
    assert import_records(engine, records, now=NOW, settings=load_settings(None)).counts["follow_ups"].created == 1


def test_an_instant_whose_utc_form_overflows_is_refused_in_a_file(engine, tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"entity": "teams", "ext_id": "T1", "name": "Nord"}) + "\n"
                    + json.dumps({"entity": "cases", "ext_id": "S-1", "team": "T1",
                                  "opened_at": "9999-12-31T20:00:00-14:00"}) + "\n", encoding="utf-8")
    problems = refused(engine, [path])
    assert [p[:3] for p in problems] == [("records.jsonl", "2", "opened_at")]
    assert "outside the times the service can hold" in problems[0][3]
    csv = tmp_path / "cases.csv"
    csv.write_text("ext_id;team;opened_at\nS-1;T1;9999-12-31T20:00:00-14:00\n", encoding="utf-8")
    assert [p[:3] for p in refused(engine, [csv])] == [("cases.csv", "2", "opened_at")]


def test_the_import_command_refuses_year_9999_with_exit_2_not_70(tmp_path):
    url = f"sqlite:///{tmp_path / 'wd.db'}"
    assert run_cli("--database-url", url, "db", "upgrade", cwd=tmp_path).returncode == 0
    paths = examples_with(tmp_path, "follow_ups.csv", "next_planned_on", "31-12-9999")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps({"entity": "cases", "ext_id": "S-9", "team": "T-NORD",
                                 "opened_at": "9999-12-31T20:00:00-14:00"}) + "\n", encoding="utf-8")
    out = run_cli("--database-url", url, "import", *map(str, paths), str(jsonl), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "follow_ups.csv, record 2, field 'next_planned_on'" in out.stderr
    assert "more.jsonl, record 1, field 'opened_at'" in out.stderr
    assert "Traceback" not in out.stderr and "OverflowError" not in out.stderr


def test_the_api_refuses_year_9999_and_an_overflowing_instant_with_422_not_500(engine, api):  # noqa: F811
    url, tokens = api
    with httpx.Client(base_url=url, headers=bearer(tokens["write"])) as c:
        c.post("/v1/teams", json=[{"ext_id": "T1", "name": "Team 1"}])
        cases = c.post("/v1/cases", json=[
            {"ext_id": "S-1", "team": "T1", "opened_at": "2024-11-01T10:00:00+01:00"},
            {"ext_id": "S-2", "team": "T1", "opened_at": "9999-12-31T20:00:00-14:00"}])
        assert cases.status_code == 422, cases.text
        assert [(p["record"], p["field"]) for p in cases.json()["problems"]] == [("1", "opened_at")]
        c.post("/v1/cases", json=[{"ext_id": "S-1", "team": "T1", "opened_at": "2024-11-01T10:00:00+01:00"}])
        notes = c.post("/v1/notifications", json=[
            {"ext_id": "U-1", "case": "S-1", "received_at": "9999-12-31T23:59:59+00:00"}])
    assert notes.status_code == 422, notes.text
    (problem,) = notes.json()["problems"]
    assert (problem["record"], problem["field"]) == ("0", "received_at")
    assert "plausible range" in problem["reason"]
    with Session(engine) as s:
        assert s.exec(select(Case.ext_id)).all() == ["S-1"]
