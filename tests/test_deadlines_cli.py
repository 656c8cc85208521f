"""`watchdog deadlines`: filters and formats over a real database."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from conftest import at
from watchdog.casestore import Case, Notification, Team, Worker
from watchdog.cli import _load_commands, app
from watchdog.db import session_scope
from watchdog.recompute import refresh_deadlines
from watchdog.settings import load_settings


def seed(engine):
    with session_scope(engine) as s:
        t1, t2 = Team(ext_id="T1", name="Nord"), Team(ext_id="T2", name="Syd")
        s.add_all([t1, t2])
        s.flush()
        w1 = Worker(ext_id="W1", name="Anna", email="a@x.dk", team_id=t1.id)
        w2 = Worker(ext_id="W2", name="Bo", email="b@x.dk", team_id=t2.id)
        s.add_all([w1, w2])
        s.flush()
        c1 = Case(ext_id="SAG-1", team_id=t1.id, worker_id=w1.id, opened_at=at("2024-05-01 08:00"),
                  facts_changed_at=at("2024-05-01 08:00"))
        c2 = Case(ext_id="SAG-2", team_id=t2.id, worker_id=w2.id, opened_at=at("2024-05-01 08:00"),
                  facts_changed_at=at("2024-05-01 08:00"))
        s.add_all([c1, c2])
        s.flush()
        s.add(Notification(ext_id="N1", case_id=c1.id, received_at=at("2024-03-30 23:30")))
        s.add(Notification(ext_id="N2", case_id=c2.id, received_at=at("2024-05-02 10:00"),
                           professional_notifier=True))
        s.flush()
        refresh_deadlines(s, now=at("2024-05-02 12:00"), settings=load_settings())


def invoke(database_url, *args):
    _load_commands()
    result = CliRunner().invoke(app, ["--database-url", database_url, "deadlines", *args], env={"COLUMNS": "220"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_json_lists_deadlines_soonest_first_with_offsets(engine, database_url):
    seed(engine)
    rows = json.loads(invoke(database_url, "--format", "json"))
    assert [(r["case_ref"], r["duty"], r["status"]) for r in rows] == [
        ("SAG-1", "assessment_24h", "breached"),
        ("SAG-2", "assessment_24h", "open"),
        ("SAG-2", "receipt_confirmation", "open"),
    ]
    assert rows[0]["due"] == "2024-04-01T00:30:00+02:00" and rows[0]["clock_start"] == "2024-03-30T23:30:00+01:00"
    assert rows[0]["citation"] == "BL § 136" and rows[0]["regime"] == "BL" and rows[0]["responsible"] == "W1"


def test_filters_by_status_duty_team_worker_and_due_period(engine, database_url):
    seed(engine)
    refs = lambda *a: [(r["case_ref"], r["duty"]) for r in json.loads(invoke(database_url, "--format", "json", *a))]  # noqa: E731
    assert refs("--status", "breached") == [("SAG-1", "assessment_24h")]
    assert refs("--duty", "receipt_confirmation") == [("SAG-2", "receipt_confirmation")]
    assert refs("--team", "T1") == [("SAG-1", "assessment_24h")]
    assert refs("--worker", "W2", "--status", "open,breached") == [
        ("SAG-2", "assessment_24h"), ("SAG-2", "receipt_confirmation")]
    assert refs("--due-within", "2d", "--now", "2024-05-02T12:00") == [("SAG-2", "assessment_24h")]
    # 6 hverdage from Thursday 2 May 2024 skip Kristi himmelfartsdag (9 May): due at the end of 13 May.
    assert refs("--due-from", "2024-05-04", "--due-to", "2024-05-13") == [("SAG-2", "receipt_confirmation")]
    assert refs("--due-from", "2024-05-04", "--due-to", "2024-05-12") == []
    assert refs("--limit", "1") == [("SAG-1", "assessment_24h")]


def test_csv_and_table_formats(engine, database_url):
    seed(engine)
    text = invoke(database_url, "--format", "csv")
    assert text.startswith("\ufeff")  # the reports' dialect: BOM, semicolons
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    assert len(rows) == 3 and rows[0]["due"] == "2024-04-01T00:30:00+02:00"
    table = invoke(database_url, "--duty", "assessment_24h")
    assert "SAG-1" in table and "01-04-2024 kl. 00:30" in table and "breached" in table


def test_refresh_recomputes_before_listing(engine, database_url):
    seed(engine)
    rows = json.loads(invoke(database_url, "--format", "json", "--refresh", "--now", "2024-05-03T12:00",
                             "--duty", "assessment_24h"))
    assert [r["status"] for r in rows] == ["breached", "breached"]


def test_an_unknown_team_or_status_is_one_line_and_exit_2(engine, database_url):
    seed(engine)
    env = {**os.environ}
    env.pop("WATCHDOG_DEBUG", None)
    for args, expected in ((["--team", "NOPE"], "unknown team 'NOPE'"),
                           (["--status", "late"], "--status 'late' is not one of")):
        out = subprocess.run([sys.executable, "-m", "watchdog", "--database-url", database_url, "deadlines", *args],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 2, out.stderr
        assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1
