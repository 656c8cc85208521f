"""The report commands end to end: a real database file, the real command line."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest
from openpyxl import load_workbook
from sqlmodel import Session

from report_helpers import Builder, ishoj_2023
from watchdog.casestore import WorkerRole
from watchdog.db import make_engine, upgrade


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as s:
        team = ishoj_2023(s)
        Builder(s).worker(team, "Lea Leder", role=WorkerRole.LEADER, ext_id="L1")
        s.commit()
    engine.dispose()
    return url


def run(db, *args, cwd):
    env = {**os.environ, "WATCHDOG_DATABASE_URL": db}
    env.pop("WATCHDOG_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_barometer_csv_and_xlsx_from_the_command_line(db, tmp_path):
    out = run(db, "report", "barometer", "--from", "2023-01-01", "--to", "2023-12-31", "--format", "csv",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout), delimiter=";"))
    four = [r[3:] for r in rows if r[0] == "1"]
    assert four == [["Ja", "1", "17"], ["Nej, men lovlig grund", "0", "0"], ["Nej", "5", "83"], ["I alt", "6", "100"]]
    assert "bemærk: 1 frist(er) med forfald i perioden tælles ikke" in out.stderr
    target = tmp_path / "b.xlsx"
    out = run(db, "report", "barometer", "--from", "2023-01-01", "--to", "2023-12-31", "-f", "xlsx", "-o",
              str(target), "--team", "FAM", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    values = [r for r in load_workbook(target)["Barometer"].iter_rows(values_only=True) if r[0] == "I alt"]
    assert values[0][:3] == ("I alt", 6, 100)


def test_report_mistakes_give_one_line_and_no_traceback(db, tmp_path):
    for args, text in [
        (["report", "barometer", "--from", "2023-13-01", "--to", "2023-12-31"], "--from must be a date"),
        (["report", "barometer", "--from", "2023-01-01", "--to", "2022-12-31"], "before it starts"),
        (["report", "barometer", "--from", "2023-01-01", "--to", "2023-12-31", "-f", "xlsx"], "add --output"),
        (["report", "caseload", "--team", "NOPE"], "unknown team 'NOPE'"),
        (["digest", "--preview", "--week", "2024-53"], "not an ISO week"),
    ]:
        out = run(db, *args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and text in out.stderr and "Traceback" not in out.stderr


def test_caseload_and_digest_preview_from_the_command_line(db, tmp_path):
    out = run(db, "report", "caseload", "--as-of", "2023-06-01", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Familierådgivningen" in out.stdout and "16" in out.stdout
    out = run(db, "digest", "--preview", "--leader", "L1", "--week", "2024-W02", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Ugeoversigt uge 2" in out.stdout and "Kære Lea Leder" in out.stdout


def test_as_known_at_reproduces_what_the_log_held_then_and_says_so(db, tmp_path):
    # On 1 January 2024 the follow-up first logged in February 2024 was not yet known.
    then = run(db, "report", "barometer", "--from", "2023-01-01", "--to", "2023-12-31",
               "--as-known-at", "2024-01-01T00:00", cwd=tmp_path)
    later = run(db, "report", "barometer", "--from", "2023-01-01", "--to", "2023-12-31",
                "--as-known-at", "2024-03-01", cwd=tmp_path)
    assert then.returncode == 0 and later.returncode == 0, then.stderr + later.stderr
    assert "som watchdog kendte den 01-01-2024 kl. 00:00" in then.stdout
    assert "registrerede dem først efter 01-01-2024" in then.stderr
    out = run(db, "report", "barometer", "--from", "2023-01-01", "--to", "2023-12-31", "--as-known-at", "soon",
              cwd=tmp_path)
    assert out.returncode == 2 and "--as-known-at: 'soon' is not a date or time" in out.stderr
