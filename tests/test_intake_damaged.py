"""Issue 12 point 7 and issue 13 point 3: damaged and mistyped import files get a clear answer.

Each damage is refused by file and line (or warned about), through the same read as the CLI, and
nothing of the import is stored. The CLI's own answers (exit codes, a FIFO, a missing file, a
warning for an empty file) are checked on the real command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from test_cli import run_cli
from watchdog.casestore import Team
from watchdog.errors import ValidationFailed
from watchdog.intake.parsing import read_file, read_files
from watchdog.intake.upsert import import_records
from watchdog.settings import load_settings

from conftest import at

NOW = at("2024-12-02T10:00")


def problems_of(path: Path) -> list[tuple[str, str, str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        records = read_file(path)
        # A damage found in a cell is a record's problem; the import refuses it.
        import_problems = [p for r in records for p in r.problems]
        if import_problems:
            raise ValidationFailed(import_problems)
        from watchdog.intake.upsert import validate_raw

        _valid, found = validate_raw(records)
        if found:
            raise ValidationFailed(found)
    return [(p.source, p.record, p.field, p.reason) for p in caught.value.problems]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_an_unbalanced_quote_that_swallows_rows_is_refused_with_the_row_and_a_hint(tmp_path):
    # The quote opened in row 2 closes in row 4: rows 3 and 4 would be one team's name.
    path = write(tmp_path / "teams.csv", 'ext_id;name\nT1;"Team Nord\nT2;Team Syd\nT3;Team Øst"\nT4;Team Vest\n')
    (problem,) = problems_of(path)
    assert problem[:3] == ("teams.csv", "2", "name")
    assert "lines 2–4" in problem[3] and "unbalanced quote" in problem[3]


def test_an_unbalanced_quote_that_runs_to_the_end_of_the_file_is_refused(tmp_path):
    path = write(tmp_path / "teams.csv", 'ext_id;name\nT1;"Team Nord\nT2;Team Syd\n')
    (problem,) = problems_of(path)
    assert problem[:3] == ("teams.csv", "2", "(row)") and "unbalanced quote" in problem[3]


def test_a_stray_byte_in_a_utf8_file_is_refused_instead_of_reading_it_all_as_cp1252(tmp_path):
    path = write(tmp_path / "teams.csv", "ext_id;name\nT1;Søren\n".encode() + b"T2;S\xf8ren\n")
    (problem,) = problems_of(path)
    assert problem[:3] == ("teams.csv", "3", "(file)")
    assert "0xF8 is not UTF-8" in problem[3] and "mixes two encodings" in problem[3]


def test_a_windows_1252_file_is_still_read_as_windows_1252(tmp_path):
    path = write(tmp_path / "teams.csv", "ext_id;name\nT1;Søren Ærø\n".encode("cp1252"))
    assert read_file(path)[0].values["name"] == "Søren Ærø"


def test_a_byte_that_windows_1252_leaves_undefined_is_refused_not_turned_into_ufffd(tmp_path):
    path = write(tmp_path / "teams.csv", b"ext_id;name\nT1;S\xf8ren\nT2;x\x81y\n")
    (problem,) = problems_of(path)
    assert problem[:3] == ("teams.csv", "3", "(file)") and "0x81" in problem[3]


def test_a_replacement_character_already_in_the_file_is_refused_by_row_and_field(tmp_path):
    path = write(tmp_path / "teams.csv", "ext_id;name\nT1;S\ufffdren\n")
    (problem,) = problems_of(path)
    assert problem[:3] == ("teams.csv", "2", "name") and "U+FFFD" in problem[3]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read(tmp_path, codec):
    text = "ext_id;name\nT1;Søren Ærø\n"
    data = text.encode(codec)
    if codec.endswith("-be"):
        data = ("\ufeff" + text).encode(codec)
    path = write(tmp_path / "teams.csv", data)
    assert read_file(path)[0].values == {"ext_id": "T1", "name": "Søren Ærø"}


def test_a_utf16_file_without_a_byte_order_mark_is_refused_by_name(tmp_path):
    path = write(tmp_path / "teams.csv", "ext_id;name\nT1;x\n".encode("utf-16-le"))
    (problem,) = problems_of(path)
    assert problem[2] == "(file)" and "UTF-16 or UTF-32" in problem[3]


def test_an_empty_or_header_only_file_is_a_warning_and_imports_nothing(engine, tmp_path):
    empty = write(tmp_path / "teams.csv", b"")
    header_only = write(tmp_path / "cases.csv", "ext_id;team;opened_at\r\n")
    blank_jsonl = write(tmp_path / "records.jsonl", "\n\n")
    notes: list[str] = []
    records, problems = read_files([empty, header_only, blank_jsonl], notes=notes)
    assert records == [] and problems == []
    assert notes == [f"{name}: the file holds no records (nothing imported from it)"
                     for name in ("teams.csv", "cases.csv", "records.jsonl")]


def test_jsonl_nested_a_thousand_deep_and_a_5000_digit_number_are_named_by_line(tmp_path):
    deep = json.dumps({"entity": "teams", "ext_id": "T1", "name": "x"}) + "\n"
    deep += '{"entity": "teams", "ext_id": ' + "[" * 1000 + "]" * 1000 + ', "name": "x"}\n'
    deep += '{"entity": "teams", "ext_id": "T3", "name": ' + "7" * 5000 + "}\n"
    deep += '{"entity": "teams", "ext_id": "T4", "name": ' + "[" * 10 + "]" * 10 + "}\n"
    path = write(tmp_path / "records.jsonl", deep)
    problems = problems_of(path)
    assert [(p[1], p[2]) for p in problems] == [("2", "(line)"), ("3", "(line)"), ("4", "(line)")]
    assert "nested too deeply" in problems[0][3] and "nested too deeply" in problems[2][3]
    assert "more than 4300 digits" in problems[1][3]


def test_twenty_thousand_unknown_columns_are_summarised_in_a_few_lines(tmp_path):
    header = "ext_id;name;" + ";".join(f"column_{i}" for i in range(20_000))
    path = write(tmp_path / "teams.csv", header + "\nT1;x\n")
    problems = problems_of(path)
    assert len(problems) == 6
    assert problems[-1][3].startswith("and 19995 more unknown columns")
    assert sum(len(" ".join(p)) for p in problems) < 2000


def test_a_refused_value_that_looks_like_a_cpr_number_is_never_echoed(tmp_path):
    path = write(tmp_path / "cases.csv", "ext_id;team;opened_at;birth_date\nS-1;T1;010190-1234;0101901234\n")
    problems = problems_of(path)
    assert {p[2] for p in problems} == {"opened_at", "birth_date"}
    for problem in problems:
        assert "1234" not in problem[3] and "CPR-like number not shown" in problem[3]


def test_a_date_written_with_slashes_is_refused_as_ambiguous_with_both_readings(tmp_path):
    path = write(tmp_path / "cases.csv", "ext_id;team;opened_at;birth_date\nS-1;T1;3/5/2024 10:00;3/5/2010\n")
    problems = problems_of(path)
    assert {p[2] for p in problems} == {"opened_at", "birth_date"}
    for problem in problems:
        assert "ambiguous" in problem[3] and "03-05-" in problem[3] and "05-03-" in problem[3]


def test_a_damaged_file_among_good_ones_stores_nothing(engine, tmp_path):
    good = write(tmp_path / "teams.csv", "ext_id;name\nT1;Team Nord\n")
    bad = write(tmp_path / "workers.csv", b"ext_id;name;email\nW1;S\xc3\xb8ren;s@k.dk\nW2;B\xf8;b@k.dk\n")
    records, file_problems = read_files([good, bad])
    with pytest.raises(ValidationFailed):
        import_records(engine, records, now=NOW, settings=load_settings(None), file_problems=file_problems)
    with Session(engine) as s:
        assert s.exec(select(Team)).all() == []


def test_the_import_command_names_a_missing_file_a_fifo_and_warns_on_an_empty_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'wd.db'}"
    assert run_cli("--database-url", url, "db", "upgrade", cwd=tmp_path).returncode == 0
    missing = run_cli("--database-url", url, "import", "missing.csv", cwd=tmp_path)
    assert missing.returncode == 2
    assert "missing.csv, record -, field '(file)': the file does not exist" in missing.stderr
    os.mkfifo(tmp_path / "cases.csv")
    fifo = run_cli("--database-url", url, "import", "cases.csv", cwd=tmp_path)  # would block for ever
    assert fifo.returncode == 2 and "not a regular file" in fifo.stderr
    write(tmp_path / "teams.csv", "ext_id;name\n")
    empty = run_cli("--database-url", url, "import", "teams.csv", cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert "warning: teams.csv: the file holds no records" in empty.stderr
    write(tmp_path / "workers.csv", "ext_id;name;" + ";".join(f"c{i}" for i in range(20_000)) + "\n")
    wide = run_cli("--database-url", url, "import", "workers.csv", cwd=tmp_path)
    assert wide.returncode == 2 and len(wide.stderr) < 2000


def test_a_quoted_note_of_several_lines_is_not_mistaken_for_swallowed_rows(tmp_path):
    header = "ext_id;case;kind;legal_basis;decided_at;child_conversation_exemption"
    path = write(tmp_path / "measures.csv",
                 f'{header}\nF-1;S-1;support;BL § 32;01-07-2024 10:00;"Barnet er 2 år;\nsamtale ikke mulig"\n')
    (record,) = read_file(path)
    assert record.problems == []
    assert record.values["child_conversation_exemption"] == "Barnet er 2 år;\nsamtale ikke mulig"
