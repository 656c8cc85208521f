"""Mappings as configuration: a vendor's columns and values become ours; what it drops is never read."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import at
from sources_helpers import CPR, EXPORT, MAPPING, drop_export, ext_ids, store_contains
from watchdog.casestore import Case, Worker
from watchdog.cli import app
from watchdog.errors import ValidationFailed
from watchdog.intake.sources.mapping import MappingError, load_mapping, parse_mapping
from watchdog.intake.sources.reading import mapped_records, read_mapped_file
from watchdog.intake.upsert import validate_raw

CASES = {"entities": {"cases": {
    "drop": ["CPR-nr"], "columns": {"Sagsnr": "ext_id", "Enhed": "team"},
    "constants": {"worker": "W-1"}, "instants": {"opened_at": {"date": "Dato", "time": "Kl"}}}}}


def one(mapping, header, *rows):
    entity = parse_mapping(mapping).entities["cases"]
    return mapped_records(entity, header, [list(r) for r in rows], source="x.csv")


def test_a_mapping_renames_columns_sets_constants_and_combines_a_date_and_a_time_into_an_instant():
    [record] = one(CASES, ["Sagsnr", "CPR-nr", "Enhed", "Dato", "Kl"], ["S-1", CPR, "T-1", "05-03-2024", "14:30"])
    valid, problems = validate_raw([record])
    assert problems == []
    assert valid[0].data.ext_id == "S-1" and valid[0].data.worker == "W-1"
    assert valid[0].data.opened_at == at("2024-03-05 14:30")
    assert CPR not in repr(record.values)  # the dropped column was never read into the record


def test_a_column_the_mapping_does_not_name_is_refused_by_its_vendor_name():
    with pytest.raises(ValidationFailed) as exc:
        one(CASES, ["Sagsnr", "CPR-nr", "Enhed", "Dato", "Kl", "Noter"], ["S-1", "", "T-1", "05-03-2024", "", "x"])
    [problem] = exc.value.problems
    assert problem.field == "Noter" and "not named in the mapping" in problem.reason


def test_a_cpr_column_the_mapping_does_not_drop_is_refused_as_sensitive():
    mapping = {"entities": {"cases": {"columns": {"Sagsnr": "ext_id"}}}}
    with pytest.raises(ValidationFailed) as exc:
        one(mapping, ["Sagsnr", "team", "opened_at", "CPR nummer"], ["S-1", "T", "05-03-2024", CPR])
    assert [p.field for p in exc.value.problems] == ["CPR nummer"]
    assert "CPR" in exc.value.problems[0].reason and "drop it in the mapping" in exc.value.problems[0].reason


def test_vendor_values_are_mapped_and_an_unmapped_value_is_refused_by_the_entitys_validation():
    mapping = load_mapping(MAPPING)
    entity = mapping.entities["workers"]
    header = ["Medarbejder ID", "Fulde navn", "Mail", "Stilling", "Aktiv"]
    records = mapped_records(entity, header, [["M-1", "A", "a@x.dk", "Teamleder", "N"],
                                              ["M-2", "B", "b@x.dk", "Praktikant", "J"]], source="m.csv")
    valid, problems = validate_raw(records)
    assert [(v.data.role.value, v.data.active) for v in valid] == [("leader", False)]
    assert [(p.record, p.field) for p in problems] == [("3", "role")]


def test_a_time_without_a_date_is_refused_naming_the_field():
    [record] = one(CASES, ["Sagsnr", "Enhed", "Dato", "Kl"], ["S-1", "T-1", "", "14:30"])
    assert [(p.field, p.reason) for p in record.problems] == [("opened_at", "has a time (14:30) but no date")]


@pytest.mark.parametrize("data, message", [
    ({"entities": {"cases": {"columns": {"Sagsnr": "case_ref"}}}}, "not a field of cases"),
    ({"entities": {"sagerne": {}}}, "unknown entity"),
    ({"entities": {"cases": {"colums": {}}}}, "unknown key entities.cases.colums"),
    ({"entities": {"cases": {"instants": {"team": {"date": "D"}}}}}, "not a time field"),
    ({"mapping": {"naive_times": "cet"}, "entities": {"cases": {}}}, "naive_times"),
])
def test_a_wrong_mapping_is_refused_naming_the_key(data, message):
    with pytest.raises(MappingError, match=message):
        parse_mapping(data)


def test_the_example_mapping_reads_every_file_of_the_example_vendor_export():
    mapping = load_mapping(MAPPING)
    records = [r for path in sorted(EXPORT.glob("*.csv")) for r in read_mapped_file(path, mapping)]
    valid, problems = validate_raw(records)
    assert problems == [] and len(valid) == 9
    assert {v.spec.name for v in valid} == {"teams", "workers", "cases", "notifications", "investigations",
                                            "measures"}


def test_mapping_check_shows_how_the_first_rows_map_and_what_is_dropped():
    result = CliRunner().invoke(app, ["mapping", "check", str(MAPPING), str(EXPORT / "sager.csv")])
    assert result.exit_code == 0, result.output
    assert "CPR-nr: dropped (never read)" in result.output
    assert "row 2: ext_id=SF-1001" in result.output and "opened_at=23-11-2026 kl. 09:15" in result.output


def test_mapping_check_names_what_would_be_refused_and_exits_1(tmp_path):
    sample = tmp_path / "sager.csv"
    sample.write_text("Sagsnr;Enhed ID;Oprettet dato;Oprettet kl;Hemmelig\nSF-1;E;32-01-2026;09:00;x\n",
                      encoding="utf-8")
    result = CliRunner().invoke(app, ["mapping", "check", str(MAPPING), str(sample)])
    assert result.exit_code == 1
    assert "field 'Hemmelig': column not named in the mapping" in result.output


def test_import_with_a_mapping_stores_the_vendor_export_without_the_dropped_columns(database_url, engine, tmp_path):
    export = drop_export(tmp_path / "export")
    files = [str(p) for p in sorted(Path(export).glob("*.csv"))]
    result = CliRunner().invoke(app, ["--database-url", database_url, "import", "--mapping", str(MAPPING), *files])
    assert result.exit_code == 0, result.output
    assert ext_ids(engine, Case) == ["SF-1001", "SF-1002"] and ext_ids(engine, Worker) == ["M-1", "M-2"]
    assert store_contains(engine, CPR) == []


def test_json_lines_are_mapped_like_a_csv_file_and_a_broken_line_is_named(tmp_path):
    import json

    sample = tmp_path / "sager.jsonl"
    good = {"Sagsnr": "S-1", "CPR-nr": CPR, "Enhed ID": "E", "Oprettet dato": "2026-11-01", "Oprettet kl": "10:00"}
    sample.write_text(json.dumps(good) + "\n", encoding="utf-8")
    [record] = read_mapped_file(sample, load_mapping(MAPPING))
    assert record.values == {"ext_id": "S-1", "team": "E", "opened_at": at("2026-11-01 10:00")}

    sample.write_text(json.dumps(good) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as exc:
        read_mapped_file(sample, load_mapping(MAPPING))
    assert [(p.record, p.field) for p in exc.value.problems] == [("2", "(line)")]
