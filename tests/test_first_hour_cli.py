"""The first hour of a new operator (issue 13): every mistake gets a clear answer, every output one meaning.

Each test runs the real CLI in a subprocess (`python -m watchdog`, the console script's entry point)
against a real database, and checks the exact answer: the line on stderr and the exit code the
README promises (2: usage, configuration or no schema; 3: the database cannot be reached).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from conftest import at
from test_deadlines_cli import seed

NO_SCHEMA = "the database has no schema (or an old one): run `watchdog db upgrade`"


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 120):
    full = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_") or k == "WATCHDOG_TEST_DATABASE_URL"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Every command that reads or writes the store, with arguments that pass its own checks.
STORE_COMMANDS = [
    ["deadlines"], ["deadlines", "--format", "csv"], ["outbox", "list"], ["outbox", "show", "1"],
    ["outbox", "retry", "1"], ["outbox", "retry", "--all-dead"], ["token", "list"],
    ["token", "create", "x", "--scope", "read"], ["token", "revoke", "abc"], ["report", "caseload"],
    ["report", "barometer", "--from", "01-01-2024", "--to", "31-12-2024"], ["digest"], ["digest", "--preview"],
    ["send-test", "--to", "W-101"], ["db", "status"],
]


# --- 1. database and schema ---------------------------------------------------------------------


def test_every_store_command_before_db_upgrade_says_run_db_upgrade_and_exits_2(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a database that answers, without the schema
    url = f"sqlite:///{empty}"
    for args in STORE_COMMANDS:
        if args == ["db", "status"]:
            continue  # it reports the missing schema itself, exit 0
        out = cli("--database-url", url, *args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith(f"error: {NO_SCHEMA}"), (args, out.stderr)
        assert "OperationalError" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_on_postgresql_an_empty_schema_says_run_db_upgrade_and_exits_2(database_url, on_postgres, tmp_path):
    if not on_postgres:
        pytest.skip("the SQLite variant is the test above")
    import uuid

    from sqlalchemy import text

    from watchdog.db import make_engine

    schema = f"wdempty_{uuid.uuid4().hex[:8]}"
    base = database_url.split("?")[0]
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{base}?options=-csearch_path%3D{schema}"
        for args in (["deadlines"], ["outbox", "list"], ["token", "list"], ["health"]):
            out = cli("--database-url", url, *args, cwd=tmp_path)
            assert out.returncode == 2, (args, out.stderr)
            assert NO_SCHEMA in out.stderr + out.stdout, (args, out.stderr)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_the_long_running_commands_refuse_to_start_without_the_schema(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    for args in (["run"], ["serve", "--port", str(closed_port())], ["tick"]):
        out = cli("--database-url", f"sqlite:///{empty}", *args, cwd=tmp_path,
                  env={"WATCHDOG_HTTP__HEALTH_PORT": "0"})
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.strip().splitlines()[-1] == (f"error: {NO_SCHEMA} (database sqlite:///{empty} is empty)")


def test_health_says_the_database_answered_but_has_no_schema_and_exits_2(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    out = cli("--database-url", f"sqlite:///{empty}", "health", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stdout.startswith(f"NOT READY: database reachable, but {NO_SCHEMA}")
    assert "unreachable" not in out.stdout


def test_every_store_command_exits_3_with_one_line_when_postgresql_cannot_be_reached(tmp_path):
    url = f"postgresql+psycopg://watchdog@127.0.0.1:{closed_port()}/watchdog"
    for args in [*STORE_COMMANDS, ["health"], ["db", "upgrade"], ["import", "--dry-run", "x.csv"]]:
        if args[0] == "import":
            (tmp_path / "teams.csv").write_text("ext_id;name\nT1;Nord\n", encoding="utf-8")
            args = ["import", "--dry-run", "teams.csv"]
        out = cli("--database-url", url, *args, cwd=tmp_path)
        assert out.returncode == 3, (args, out.returncode, out.stderr)
        line = out.stderr.strip().splitlines()[-1] if args != ["health"] else out.stdout
        assert "Connection refused" in line and "unexpected" not in out.stderr, (args, out.stderr, out.stdout)


def test_a_read_only_command_creates_no_database_and_db_upgrade_says_it_created_one(tmp_path):
    target = tmp_path / "nonexistent" / "dir" / "x.db"
    out = cli("--database-url", f"sqlite:///{target}", "deadlines", cwd=tmp_path)
    assert out.returncode == 3
    assert out.stderr == (f"error: database file {target} does not exist: create it with `watchdog db upgrade` "
                          "(or check --database-url / WATCHDOG_DATABASE_URL)\n")
    assert not (tmp_path / "nonexistent").exists()
    out = cli("--database-url", f"sqlite:///{target}", "db", "upgrade", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"created the database file {target}\n") and target.exists()
    assert cli("--database-url", f"sqlite:///{target}", "deadlines", cwd=tmp_path).stdout == "no deadlines match\n"


# --- 2. settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("name, meant", [("WATCHDOG_SMPT__HOST", "WATCHDOG_SMTP__HOST"),
                                         ("WATCHDOG_DATABSE_URL", "WATCHDOG_DATABASE_URL"),
                                         ("WATCHDOG_SMTP__HOTS", "WATCHDOG_SMTP__HOST")])
def test_a_misspelt_watchdog_variable_is_refused_with_did_you_mean(tmp_path, name, meant):
    out = cli("check-config", cwd=tmp_path, env={name: "x"})
    assert out.returncode == 2
    assert out.stderr == (f"error: unknown variable {name} (in the environment) names no setting: "
                          f"did you mean {meant}?\n")


def test_a_misspelt_variable_in_dot_env_is_refused_and_an_unrelated_one_is_warned_about(tmp_path):
    (tmp_path / ".env").write_text("WATCHDOG_MUNICIPALTY=Aarhus\n", encoding="utf-8")
    out = cli("check-config", cwd=tmp_path)
    assert out.returncode == 2 and "WATCHDOG_MUNICIPALTY (in .env)" in out.stderr
    assert "did you mean WATCHDOG_MUNICIPALITY?" in out.stderr
    (tmp_path / ".env").unlink()
    out = cli("check-config", cwd=tmp_path, env={"WATCHDOG_QUUX": "1"})
    assert out.returncode == 0
    assert out.stderr == "warning: WATCHDOG_QUUX (in the environment) names no setting and is ignored\n"


def test_check_config_names_the_files_it_read_and_the_source_of_every_value_not_default(tmp_path):
    (tmp_path / "wd.toml").write_text('log_level = "DEBUG"\n[alerts.ladder]\nplan = ["1d"]\n', encoding="utf-8")
    (tmp_path / ".env").write_text("WATCHDOG_MUNICIPALITY=Aarhus\n", encoding="utf-8")
    out = cli("--config", "wd.toml", "--database-url", "sqlite:///x.db", "check-config", cwd=tmp_path,
              env={"WATCHDOG_SMTP__HOST": "relay.kommune.dk"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "TOML file read: wd.toml (--config)" in lines
    assert f".env file read: {tmp_path / '.env'}" in lines
    assert 'database_url = "sqlite:///x.db"   # from command line (--database-url)' in lines
    assert 'smtp.host = "relay.kommune.dk"   # from environment WATCHDOG_SMTP__HOST' in lines
    assert 'municipality = "Aarhus"   # from .env WATCHDOG_MUNICIPALITY' in lines
    assert 'log_level = "DEBUG"   # from wd.toml' in lines
    assert 'alerts.ladder.plan = ["1d"]   # from wd.toml' in lines
    assert "smtp.port = 25" in lines  # a default carries no source
    (tmp_path / ".env").unlink()
    out = cli("check-config", cwd=tmp_path)
    assert "TOML file read: none (config/watchdog.toml does not exist)" in out.stdout
    assert f".env file read: none (no .env in {tmp_path})" in out.stdout


# --- 3. inputs people type ----------------------------------------------------------------------


def test_date_options_take_the_danish_forms_the_output_uses(engine, database_url):
    seed(engine)

    def refs(*args):
        out = cli("--database-url", database_url, "deadlines", "--format", "json", *args)
        assert out.returncode == 0, out.stderr
        return [(r["case_ref"], r["duty"]) for r in json.loads(out.stdout)]

    iso = refs("--due-from", "2024-05-04", "--due-to", "2024-05-13")
    assert iso == [("SAG-2", "receipt_confirmation")]
    assert refs("--due-from", "04-05-2024", "--due-to", "13-05-2024") == iso
    assert refs("--due-from", "04.05.2024", "--due-to", "13.05.2024") == iso
    assert refs("--due-within", "2d", "--now", "02-05-2024 12:00") == [("SAG-2", "assessment_24h")]
    assert refs("--due-within", "2w", "--now", "02-05-2024 12:00") == [
        ("SAG-2", "assessment_24h"), ("SAG-2", "receipt_confirmation")]
    out = cli("--database-url", database_url, "report", "barometer", "--from", "01-01-2024", "--to", "31-12-2024",
              "--as-of", "02-12-2024")
    assert out.returncode == 0, out.stderr


def test_a_bad_period_or_date_says_what_to_write_and_never_mentions_receipt(engine, database_url):
    out = cli("--database-url", database_url, "deadlines", "--due-within", "2x")
    assert out.returncode == 2
    assert out.stderr == ("error: --due-within: '2x' is not a period: use a number and w, d, h or m, "
                          "e.g. 2w, 14d, 36h or 90m\n")
    out = cli("--database-url", database_url, "deadlines", "--due-within", "receipt")
    assert out.returncode == 2 and out.stderr.startswith("error: --due-within: 'receipt' is not a period: use")
    out = cli("--database-url", database_url, "deadlines", "--due-from", "4 maj")
    assert out.returncode == 2 and "dd-mm-yyyy" in out.stderr


def test_retrying_an_alert_that_is_not_dead_says_so_and_exits_1(engine, database_url):
    from watchdog import outbox

    now = at("2026-11-23 09:00")
    with Session(engine) as s:
        outbox.enqueue(s, [outbox.NewAlert(key="k1", kind=outbox.AlertKind.TEST, stage="test",
                                           recipient_address="a@kommune.dk", channel=outbox.Channel.EMAIL,
                                           send_after=now)], now=now)
        s.commit()
        alert_id = s.exec(select(outbox.Alert.id)).one()
    out = cli("--database-url", database_url, "outbox", "retry", str(alert_id))
    assert out.returncode == 1
    assert out.stdout == "0 dead alert(s) queued again\n"
    assert out.stderr == (f"error: alert {alert_id} is pending, not dead: nothing to retry "
                          "(`watchdog outbox show` tells its attempts)\n")
    out = cli("--database-url", database_url, "outbox", "retry", "999999")
    assert out.returncode == 1 and out.stderr == "error: no alert with id 999999\n"


# --- 4. one meaning per output ------------------------------------------------------------------


def test_a_date_only_deadline_reads_udgangen_af_and_piped_tables_are_not_cut(engine, database_url):
    seed(engine)
    out = cli("--database-url", database_url, "deadlines")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "receipt_confirmation" in line)
    assert "udgangen af 13-05-2024" in row and "14-05-2024 kl. 00:00" not in out.stdout
    assert "receipt_confirmation" in row and "…" not in out.stdout  # nothing folded or truncated
    assert max(len(line) for line in out.stdout.splitlines()) > 80  # not cut at 80 columns
    header = out.stdout.splitlines()[1]
    for column in ("case", "duty", "paragraph", "clock start", "due", "status", "met", "worker", "note"):
        assert column in header
    out = cli("--database-url", database_url, "report", "barometer", "--from", "2024-01-01", "--to", "2024-12-31",
              "--as-of", "2024-12-02")
    assert "Status pr. udgangen af 02-12-2024" in out.stdout


def test_deadlines_csv_is_the_reports_dialect_with_bom_semicolons_and_a_formula_guard(engine, database_url):
    from watchdog.casestore import Case

    seed(engine)
    with Session(engine) as s:
        case = s.exec(select(Case).where(Case.ext_id == "SAG-1")).one()
        case.ext_id = "=HYPERLINK(1)"
        s.add(case)
        s.commit()
    out = subprocess.run([sys.executable, "-m", "watchdog", "--database-url", database_url, "deadlines",
                          "--format", "csv"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"\xef\xbb\xbf")
    text = out.stdout.decode("utf-8-sig")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert {r["case_ref"] for r in rows} == {"'=HYPERLINK(1)", "SAG-2"}
    report = cli("--database-url", database_url, "report", "caseload", "--format", "csv")
    assert report.stdout.startswith("\ufeff") and ";" in report.stdout.splitlines()[0]


# --- 6. trying delivery locally ------------------------------------------------------------------


def test_mailsink_says_how_to_point_watchdog_at_it_and_logs_each_message(tmp_path):
    port = closed_port()
    sink = subprocess.Popen([sys.executable, "-m", "watchdog", "mailsink", "--port", str(port), "--folder",
                             str(tmp_path / "mail")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        banner = [sink.stdout.readline() for _ in range(9)]
        assert banner[0] == f"listening on smtp://127.0.0.1:{port}, saving to {tmp_path / 'mail'} (Ctrl-C to stop)\n"
        assert f"  WATCHDOG_SMTP__HOST=127.0.0.1 WATCHDOG_SMTP__PORT={port} WATCHDOG_SMTP__MODE=plain\n" in banner
        assert f"  port = {port}\n" in banner and "  [smtp]\n" in banner
        sent = cli("send-test", "--to", "anne@kommune.dk", cwd=tmp_path,
                   env={"WATCHDOG_SMTP__HOST": "127.0.0.1", "WATCHDOG_SMTP__PORT": str(port)})
        assert sent.returncode == 0, sent.stderr
        line = sink.stdout.readline()
        assert " received from frister@kommune.example.dk to anne@kommune.dk: " in line
        assert line.rstrip().endswith(".eml") and "Test" in line
    finally:
        sink.send_signal(2)
        rest, _ = sink.communicate(timeout=30)
    assert "1 messages saved" in rest


def test_send_test_with_the_default_smtp_says_nothing_listens_and_how_to_start_the_sink(tmp_path):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 25)) == 0:
            pytest.skip("something listens on 127.0.0.1:25 on this machine")
    out = cli("send-test", "--to", "anne@kommune.dk", cwd=tmp_path)
    assert out.returncode == 1
    assert ("hint: nothing listens on 127.0.0.1:25 (smtp.host, smtp.port). To try delivery locally, start a "
            "sink in another shell with `watchdog mailsink` (port 8025)") in out.stderr


def test_the_demo_has_a_fixed_default_seed_and_prints_its_hint_on_one_line(tmp_path):
    args = ["demo", "--cases", "40", "--caseworkers", "3", "--now", "23-11-2026 09:00"]
    first = cli(*args, "--out", str(tmp_path / "a"), cwd=tmp_path, timeout=300)
    second = cli(*args, "--out", str(tmp_path / "b"), cwd=tmp_path, timeout=300)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "seed 2026" in first.stdout

    def numbers(text: str) -> list[str]:  # everything but the folder and the elapsed time
        return [line for line in text.splitlines() if "demo-out" not in line and str(tmp_path) not in line]

    assert numbers(first.stdout) == numbers(second.stdout)
    assert "not_applicable" in first.stdout and "…" not in first.stdout  # piped: no header cut short
    hint = next(line for line in first.stdout.splitlines() if line.startswith("explore it:"))
    assert hint.endswith("deadlines --status breached") and str(tmp_path / "a") in hint


# --- 7. replica names ---------------------------------------------------------------------------


def test_every_tick_reports_under_one_stable_replica_name(engine, database_url, tmp_path):
    from watchdog.ops.heartbeat import ServiceHeartbeat

    for _ in range(2):
        out = cli("--database-url", database_url, "tick", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    out = cli("--database-url", database_url, "tick", "--replica", "cron-nord", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with Session(engine) as s:
        rows = {r.replica: r.rounds_ok for r in s.exec(select(ServiceHeartbeat))}
    assert rows == {socket.gethostname(): 2, "cron-nord": 1}


def test_a_replica_that_stopped_is_shown_as_stopped_left_out_of_the_metrics_and_pruned(engine, database_url):
    from watchdog.ops.heartbeat import ServiceHeartbeat, mark_stopped, record_round
    from watchdog.ops.metrics import read_db_figures

    now = at("2026-11-23 09:00")
    with Session(engine) as s:
        record_round(s, replica="old-pod", ok=True, now=now)
        record_round(s, replica="live-pod", ok=True, now=now)
        s.commit()
    mark_stopped(engine, replica="old-pod", now=now + timedelta(minutes=1))
    with Session(engine) as s:
        assert [r for r, _ in read_db_figures(s, now=now).replicas] == ["live-pod"]
    out = cli("--database-url", database_url, "health")
    stopped = next(line for line in out.stdout.splitlines() if "old-pod" in line)
    assert "old-pod: stopped at" in stopped
    with Session(engine) as s:  # a day later the next round of another replica prunes it
        record_round(s, replica="live-pod", ok=True, now=now + timedelta(days=1, minutes=2))
        s.commit()
        assert [r.replica for r in s.exec(select(ServiceHeartbeat))] == ["live-pod"]
