"""Data-quality warnings: implausible facts are stored, reported by the import with file, row and
field, listed by `watchdog report data-quality`, and resolved by a later import that fixes them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook
from sqlmodel import Session, select

from conftest import at
from watchdog.db import make_engine, upgrade
from watchdog.deadlines import Deadline
from watchdog.intake.parsing import read_files
from watchdog.intake.quality import KINDS, DataQualityWarning
from watchdog.intake.upsert import import_records
from watchdog.reports.data_quality import data_quality_report, render_data_quality
from watchdog.rules.types import Duty
from watchdog.settings import load_settings

SETTINGS = load_settings(None)
NOW = at("2024-12-02 10:00")

FILES = {
    "teams.csv": "ext_id;name\nT;Team\n",
    "workers.csv": "ext_id;name;email;team\nW;Anne;a@kommune.example.dk;T\n",
    "cases.csv": "ext_id;team;worker;opened_at\nS-1;T;W;01-01-2024 09:00\n",
    # Row 2: assessed before it was received. Row 3: child_in_support = nej while the support
    # measure F-1 (effected 01-03-2024, not ended) runs: the measure wins.
    "notifications.csv": ("ext_id;case;received_at;assessed_at;child_in_support\n"
                          "U-1;S-1;10-02-2024 10:00;09-02-2024 15:00;\n"
                          "U-2;S-1;02-05-2024 10:00;02-05-2024 12:00;nej\n"),
    "investigations.csv": "ext_id;case;aware_at;completed_at\nB-1;S-1;10-02-2024 10:00;01-02-2024 12:00\n",
    # F-1 effected before its decision.
    "measures.csv": ("ext_id;case;kind;legal_basis;decided_at;effected_at\n"
                     "F-1;S-1;support;BL § 32;05-03-2024 10:00;01-03-2024 09:00\n"),
    "follow_ups.csv": "ext_id;measure;performed_at\nO-1;F-1;20-02-2024 10:00\n",
}


def write(folder: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = folder / name
        path.write_bytes(text.replace("\n", "\r\n").encode("utf-8-sig"))
        paths.append(path)
    return paths


def import_(engine, paths, now=NOW):
    records, problems = read_files(paths)
    return import_records(engine, records, now=now, settings=SETTINGS, file_problems=problems)


def test_every_implausible_fact_is_a_warning_with_file_row_and_field_and_is_stored(engine, tmp_path):
    result = import_(engine, write(tmp_path, FILES))
    got = {(w.kind, Path(w.source).name, w.record, w.field) for w in result.warnings}
    assert got == {
        ("assessed_before_receipt", "notifications.csv", "2", "assessed_at"),
        ("support_flag_contradicts_measure", "notifications.csv", "3", "child_in_support"),
        ("completed_before_awareness", "investigations.csv", "2", "completed_at"),
        ("effected_before_decision", "measures.csv", "2", "effected_at"),
        ("follow_up_before_effect", "measures.csv", "2", "effected_at"),
        ("follow_up_before_effect", "follow_ups.csv", "2", "performed_at"),
    }
    assert {w.kind for w in result.warnings} == set(KINDS)
    as_json = result.as_dict()["warnings"]
    assert {"kind", "source", "record", "field", "message", "case_ref", "title"} <= set(as_json[0])
    assert all(w["case_ref"] == "S-1" for w in as_json)
    flag = next(w for w in result.warnings if w.kind == "support_flag_contradicts_measure")
    assert "01-03-2024" in flag.message and "BL § 137" in flag.message
    with Session(engine) as s:
        assert len(s.exec(select(DataQualityWarning)).all()) == 6
        # The measure wins over the explicit "nej": U-2's reassessment duty exists (BL § 137).
        # U-1 (10-02-2024) came before the measure was effected: no reassessment for it.
        found = s.exec(select(Deadline).where(Deadline.duty == Duty.REASSESSMENT)).all()
        assert len(found) == 1 and "measure" in found[0].note and found[0].citation == "BL § 137, stk. 1"


def test_a_later_import_that_fixes_a_fact_resolves_its_warning_and_the_report_lists_the_rest(engine, tmp_path):
    import_(engine, write(tmp_path, FILES))
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    import_(engine, write(fixed, {"measures.csv": ("ext_id;case;kind;legal_basis;decided_at;effected_at\n"
                                                   "F-1;S-1;support;BL § 32;05-03-2024 10:00;06-03-2024 09:00\n")}),
            now=at("2024-12-03 10:00"))
    with Session(engine) as s:
        report = data_quality_report(s, now=at("2024-12-03 11:00"), municipality="Demo Kommune")
        everything = data_quality_report(s, now=at("2024-12-03 11:00"), include_resolved=True)
    assert {r.kind for r in report.rows} == set(KINDS) - {"effected_before_decision"}
    # O-1 (20-02-2024) is still before the corrected effect (06-03-2024): both sides still warn.
    assert len([r for r in report.rows if r.kind == "follow_up_before_effect"]) == 2
    assert dict((k, n) for k, _, n in report.counts)["effected_before_decision"] == 0
    assert len(everything.rows) == 6
    resolved = next(r for r in everything.rows if r.kind == "effected_before_decision")
    assert resolved.resolved_at == at("2024-12-03 10:00")

    text = render_data_quality(report, "table")
    assert "Demo Kommune" in text and all(title in text for title in KINDS.values())
    rows = list(csv.reader(io.StringIO(render_data_quality(report, "csv")), delimiter=";"))
    assert rows[0][:6] == ["Kode", "Type", "Sag", "Fil", "Række", "Felt"]
    assert {r[0] for r in rows[1:]} == set(KINDS) - {"effected_before_decision"}
    wb = load_workbook(io.BytesIO(render_data_quality(report, "xlsx")))
    assert wb["Datakvalitet"].max_row == 4 + len(report.rows)
    assert [r[0] for r in wb["Pr. type"].iter_rows(min_row=2, values_only=True)] == list(KINDS)


def test_the_import_and_the_report_commands_show_the_warnings(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    env = {**os.environ, "WATCHDOG_DATABASE_URL": url}
    env.pop("WATCHDOG_DEBUG", None)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)

    paths = [str(p) for p in write(tmp_path, FILES)]
    out = run("import", "--json", *paths)
    assert out.returncode == 0, out.stderr
    warnings = json.loads(out.stdout)["warnings"]
    assert {w["kind"] for w in warnings} == set(KINDS)
    out = run("report", "data-quality", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("measures.csv") == 2 and "follow_ups.csv" in out.stdout
    out = run("report", "data-quality", "--format", "xlsx", "--output", "dq.xlsx")
    assert out.returncode == 0 and (tmp_path / "dq.xlsx").exists()
    out = run("report", "data-quality", "--kind", "nope")
    assert out.returncode != 0 and "unknown warning kind 'nope'" in out.stderr
