"""`watchdog tick` and `watchdog outbox …` from the shell: one round, inspection, retry of dead letters."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from watchdog.casestore import Case, Notification, Team, Worker
from watchdog.clock import utcnow
from watchdog.db import make_engine, upgrade
from watchdog.outbox import Alert, AlertState


def cli(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    full.pop("WATCHDOG_CONFIG", None)
    full.pop("WATCHDOG_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


def test_tick_delivers_one_round_and_the_outbox_commands_show_and_retry_dead_letters(tmp_path, smtp_server):
    url = f"sqlite:///{tmp_path / 'tick.db'}"
    engine = make_engine(url)
    upgrade(engine)
    received = utcnow() - timedelta(minutes=2)  # `tick` reads the real clock: a fresh notification
    with Session(engine) as s:
        team = Team(ext_id="T1", name="Team 1")
        s.add(team)
        s.flush()
        anne = Worker(ext_id="W1", name="Anne", email="anne@kommune.example.dk", team_id=team.id)
        s.add(anne)
        s.flush()
        case = Case(ext_id="S-1", team_id=team.id, worker_id=anne.id, opened_at=received, facts_changed_at=received)
        s.add(case)
        s.flush()
        s.add(Notification(ext_id="N-1", case_id=case.id, received_at=received))
        s.commit()
    smtp_server.reject_addresses["anne@kommune.example.dk"] = "550 5.1.1 No such user"
    env = {"WATCHDOG_DATABASE_URL": url, "WATCHDOG_SMTP__HOST": "127.0.0.1",
           "WATCHDOG_SMTP__PORT": str(smtp_server.port)}

    out = cli("tick", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "delivery:" in out.stdout and "1 dead" in out.stdout
    with Session(engine) as s:
        dead = s.exec(select(Alert).where(Alert.deadline_id.is_not(None))).one()
    assert dead.state == AlertState.DEAD

    listed = cli("outbox", "list", "--state", "dead", cwd=tmp_path, env=env)
    assert listed.returncode == 0 and "at_receipt" in listed.stdout and "failed" in listed.stdout
    assert "dead: 1" in listed.stdout
    shown = cli("outbox", "show", str(dead.id), cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "permanent failure" in shown.stdout

    smtp_server.reject_addresses.clear()
    retried = cli("outbox", "retry", str(dead.id), cwd=tmp_path, env=env)
    assert retried.returncode == 0 and "1 dead alert(s) queued again" in retried.stdout
    again = cli("tick", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert len(smtp_server.to("anne@kommune.example.dk")) == 1
    engine.dispose()


def test_outbox_mistakes_are_one_line_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(make_engine(url))
    env = {"WATCHDOG_DATABASE_URL": url}
    for args in (("outbox", "retry"), ("outbox", "list", "--state", "lost"), ("outbox", "show", "999")):
        out = cli(*args, cwd=tmp_path, env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
