"""The file import: Danish spreadsheets in, every record validated, all of it stored or none."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from conftest import at
from watchdog.casestore import (Absence, Case, FollowUp, Investigation, Measure, Notification,
                                ReassessmentParticipant, SupervisionVisit, Team, Worker)
from watchdog.deadlines import Deadline
from watchdog.errors import ValidationFailed
from watchdog.intake.parsing import parse_instant, read_file, read_files
from watchdog.intake.upsert import import_records
from watchdog.settings import Settings, load_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOW = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)
TABLES = (Team, Worker, Absence, Case, Notification, ReassessmentParticipant, Investigation, Measure,
          FollowUp, SupervisionVisit)


@pytest.fixture
def settings() -> Settings:
    return load_settings(None)


def run_import(engine, settings, paths, *, now=NOW, dry_run=False, entity=None):
    records, file_problems = read_files([Path(p) for p in paths], entity=entity)
    return import_records(engine, records, now=now, settings=settings, dry_run=dry_run,
                          file_problems=file_problems)


def row_counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def write_csv(path: Path, text: str, encoding: str = "utf-8-sig") -> Path:
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    return path


def test_the_example_files_import_in_any_order_and_deadlines_are_computed(engine, settings):
    paths = sorted(EXAMPLES.glob("*.csv"), reverse=True)  # visits first: dependency order is ours
    result = run_import(engine, settings, paths)
    assert {n: c.created for n, c in result.counts.items()} == {
        "teams": 2, "workers": 5, "absences": 1, "cases": 3, "notifications": 3, "investigations": 2,
        "measures": 2, "follow_ups": 1, "visits": 2}
    with Session(engine) as s:
        case = s.exec(select(Case).where(Case.ext_id == "S-2024-0001")).one()
        assert case.opened_at == at("2024-03-04T09:15")  # dd-mm-yyyy HH:MM is Danish local time
        assert case.facts_changed_at == NOW
        w = s.exec(select(Worker).where(Worker.ext_id == "W-101")).one()
        assert w.fte == 0.8 and w.name == "Søren Ærø"  # comma decimal, UTF-8 with BOM
        u2 = s.exec(select(Notification).where(Notification.ext_id == "U-2")).one()
        parts = s.exec(select(Worker.ext_id).join(ReassessmentParticipant,
                       ReassessmentParticipant.worker_id == Worker.id)
                       .where(ReassessmentParticipant.notification_id == u2.id)).all()
        assert sorted(parts) == ["W-100", "W-101"]
        u3 = s.exec(select(Notification).where(Notification.ext_id == "U-3")).one()
        assert u3.received_at == datetime(2024, 4, 2, 5, 45, tzinfo=UTC)  # ISO with offset
        absence = s.exec(select(Absence)).one()
        assert (absence.starts_on, absence.ends_on) == (date(2024, 7, 1), date(2024, 7, 19))
        assert s.exec(select(func.count()).select_from(Deadline)).one() > 0
    assert result.deadlines_recomputed and len(result.affected_case_ids) == 3


def test_reimporting_the_same_data_changes_nothing_not_even_facts_changed_at(engine, settings):
    paths = sorted(EXAMPLES.glob("*.csv"))
    run_import(engine, settings, paths)
    later = datetime(2024, 12, 3, tzinfo=UTC)
    again = run_import(engine, settings, paths, now=later)
    assert all(c.created == c.updated == 0 for c in again.counts.values())
    assert sum(c.unchanged for c in again.counts.values()) == 21
    assert not again.affected_case_ids
    with Session(engine) as s:
        assert set(s.exec(select(Case.facts_changed_at)).all()) == {NOW}


def test_a_changed_follow_up_marks_only_its_case_as_changed(engine, settings, tmp_path):
    run_import(engine, settings, sorted(EXAMPLES.glob("*.csv")))
    changed = write_csv(tmp_path / "follow_ups.csv",
                        "ext_id;measure;performed_at;next_planned_on\nO-1;F-2;28-06-2024 13:00;01-12-2024\n")
    later = datetime(2024, 12, 3, tzinfo=UTC)
    result = run_import(engine, settings, [changed], now=later)
    assert result.counts["follow_ups"].updated == 1
    with Session(engine) as s:
        stamps = dict(s.exec(select(Case.ext_id, Case.facts_changed_at)).all())
    assert stamps == {"S-2024-0001": NOW, "S-2024-0002": later, "S-2024-0003": NOW}


def test_changed_reassessment_participants_count_as_a_change_of_the_case(engine, settings, tmp_path):
    run_import(engine, settings, sorted(EXAMPLES.glob("*.csv")))
    changed = write_csv(tmp_path / "underretninger.csv",
                        "ext_id;case;received_at;reassessment_participants\nU-2;S-2024-0002;11-03-2024 13:30;W-100\n")
    later = datetime(2024, 12, 3, tzinfo=UTC)
    result = run_import(engine, settings, [changed], now=later)
    assert result.counts["notifications"].updated == 1
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ReassessmentParticipant)).one() == 1
        case = s.exec(select(Case).where(Case.ext_id == "S-2024-0002")).one()
        assert case.facts_changed_at == later
        # A column absent from the file keeps its stored value.
        u2 = s.exec(select(Notification).where(Notification.ext_id == "U-2")).one()
        assert u2.child_in_support is True


def test_a_refused_record_stores_nothing_and_every_problem_is_named(engine, settings, tmp_path):
    teams = write_csv(tmp_path / "teams.csv", "ext_id;name\nT1;Team 1\n")
    cases = write_csv(tmp_path / "cases.csv",
                      "ext_id;team;opened_at;closed_at\n"
                      "S-1;T1;01-02-2024 10:00;\n"
                      "S-2;T9;01-02-2024 10:00;\n"
                      "S-3;T1;30-02-2024;\n"
                      "S-4;T1;01-02-2024 10:00;01-01-2024 10:00\n"
                      "S-1;T1;01-02-2024 10:00;\n")
    with pytest.raises(ValidationFailed) as caught:
        run_import(engine, settings, [teams, cases])
    got = {(p.source, p.record, p.field) for p in caught.value.problems}
    assert got == {("cases.csv", "3", "team"), ("cases.csv", "4", "opened_at"),
                   ("cases.csv", "5", "closed_at"), ("cases.csv", "6", "ext_id")}
    assert all(p.reason for p in caught.value.problems)
    assert set(row_counts(engine).values()) == {0}


def test_cpr_and_name_columns_are_refused_by_name(engine, settings, tmp_path):
    cases = write_csv(tmp_path / "cases.csv", "ext_id;team;opened_at;CPR-nr;Barnets navn\nS-1;T1;01-02-2024;x;y\n")
    with pytest.raises(ValidationFailed) as caught:
        run_import(engine, settings, [cases])
    fields = {p.field: p.reason for p in caught.value.problems}
    assert set(fields) == {"CPR-nr", "Barnets navn"}
    assert all("CPR number or a child's name" in r for r in fields.values())


def test_a_cpr_number_in_a_value_and_an_unknown_column_are_refused(engine, settings, tmp_path):
    teams = write_csv(tmp_path / "teams.csv", "ext_id;name;colour\n1203041234;Team;blue\n")
    with pytest.raises(ValidationFailed) as caught:
        run_import(engine, settings, [teams])
    assert [(p.field, "unknown column" in p.reason) for p in caught.value.problems] == [("colour", True)]
    teams.write_text("ext_id;name\n120304-1234;Team\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="CPR number"):
        run_import(engine, settings, [teams])


def test_windows_1252_and_comma_delimited_files_are_read(engine, settings, tmp_path):
    teams = write_csv(tmp_path / "hold.csv", "ext_id,name\nT-Æ,Børn og Unge Øst\n", encoding="cp1252")
    run_import(engine, settings, [teams])
    with Session(engine) as s:
        assert s.exec(select(Team.name)).one() == "Børn og Unge Øst"


def test_dry_run_validates_and_reports_but_stores_nothing(engine, settings):
    result = run_import(engine, settings, sorted(EXAMPLES.glob("*.csv")), dry_run=True)
    assert result.dry_run and result.counts["cases"].created == 3
    assert set(row_counts(engine).values()) == {0}


def test_an_xlsx_written_by_openpyxl_imports_with_typed_and_text_cells(engine, settings, tmp_path):
    from openpyxl import Workbook

    run_import(engine, settings, [EXAMPLES / "teams.csv", EXAMPLES / "workers.csv"])
    wb = Workbook()
    ws = wb.active
    ws.title = "Sager"
    ws.append(["ext_id", "team", "worker", "birth_date", "opened_at", "closed_at"])
    ws.append(["S-X1", "T-NORD", "W-101", datetime(2008, 5, 17), datetime(2024, 3, 30, 23, 30), None])
    ws.append([4711, "T-SYD", None, None, "01-04-2024 08:00", "02-04-2024"])
    path = tmp_path / "export.xlsx"
    wb.save(path)
    run_import(engine, settings, [path], entity="cases")
    with Session(engine) as s:
        cases = {c.ext_id: c for c in s.exec(select(Case))}
    assert cases["S-X1"].opened_at == at("2024-03-30T23:30")
    assert cases["S-X1"].birth_date == date(2008, 5, 17)
    assert cases["4711"].closed_at == at("2024-04-02T00:00")
    assert cases["4711"].worker_id is None


def test_jsonl_may_mix_entities_and_must_give_offsets(engine, settings, tmp_path):
    path = tmp_path / "push.jsonl"
    path.write_text(
        '{"entity": "teams", "ext_id": "T1", "name": "Team 1"}\n'
        '{"entity": "cases", "ext_id": "S-1", "team": "T1", "opened_at": "2024-02-01T10:00:00+01:00"}\n'
        '{"entity": "cases", "ext_id": "S-2", "team": "T1", "opened_at": "2024-02-01T10:00:00"}\n'
        'not json\n', encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        run_import(engine, settings, [path])
    assert [(p.record, p.field) for p in caught.value.problems] == [("3", "opened_at"), ("4", "(line)")]
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n", encoding="utf-8")
    result = run_import(engine, settings, [path])
    assert result.counts["cases"].created == 1


def test_local_times_in_the_dst_fold_or_gap_are_refused_with_a_way_out():
    with pytest.raises(ValueError, match="happens twice"):
        parse_instant("27-10-2024 02:30")
    with pytest.raises(ValueError, match="does not exist"):
        parse_instant("31-03-2024 02:30")
    assert parse_instant("2024-10-27T02:30+02:00") == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert parse_instant("27-10-2024 03:30") == datetime(2024, 10, 27, 2, 30, tzinfo=UTC)


def test_a_file_whose_entity_cannot_be_told_is_refused(tmp_path):
    path = write_csv(tmp_path / "export.csv", "ext_id;name\nT1;x\n")
    with pytest.raises(ValidationFailed, match="cannot tell which entity"):
        read_file(path)
    assert read_file(path, entity="teams")[0].values == {"ext_id": "T1", "name": "x"}


def test_the_import_command_prints_every_problem_and_exits_2(tmp_path):
    from test_cli import run_cli

    url = f"sqlite:///{tmp_path / 'wd.db'}"
    assert run_cli("--database-url", url, "db", "upgrade", cwd=tmp_path).returncode == 0
    bad = write_csv(tmp_path / "cases.csv", "ext_id;team;opened_at\nS-1;T9;01-02-2024\nS-2;T1;99-99-2024\n")
    out = run_cli("--database-url", url, "import", str(bad), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == "error: 2 problems found; nothing was stored"
    assert lines[0].startswith("cases.csv, record 2, field 'team'")
    assert "Traceback" not in out.stderr
    good = run_cli("--database-url", url, "import", *map(str, sorted(EXAMPLES.glob("*.csv"))), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "3 cases changed" in good.stdout


def test_the_jsonl_example_imports_and_every_field_is_documented_in_the_readme(engine, settings):
    from watchdog.intake.schemas import ENTITIES

    result = run_import(engine, settings, [EXAMPLES / "records.jsonl"])
    assert result.counts["investigations"].created == 1
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    intake = readme[readme.index("## Intake"):readme.index("## CLI reference")]
    for spec in ENTITIES.values():
        for name in spec.fields:
            assert f"`{name}`" in intake, f"{spec.name}.{name} is not documented in the README"


def test_the_aftercare_decision_is_imported_on_the_case_and_counts_as_a_change(engine, settings, tmp_path):
    run_import(engine, settings, sorted(EXAMPLES.glob("*.csv")))
    changed = write_csv(tmp_path / "cases.csv",
                        "ext_id;team;opened_at;aftercare_decided_at\nS-2024-0002;T-NORD;11-03-2024 13:40;01-12-2024 09:30\n")
    later = datetime(2024, 12, 3, tzinfo=UTC)
    result = run_import(engine, settings, [changed], now=later)
    assert result.counts["cases"].updated == 1
    with Session(engine) as s:
        case = s.exec(select(Case).where(Case.ext_id == "S-2024-0002")).one()
    assert case.aftercare_decided_at == at("2024-12-01T09:30")
    assert case.facts_changed_at == later
