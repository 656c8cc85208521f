"""The daemon: APScheduler set up as STACK.md says, a failing job does not stop it, SIGTERM exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from watchdog.casestore import Case, Notification, Team, Worker
from watchdog.clock import utcnow
from watchdog.db import make_engine, upgrade
from watchdog.mailsink import MailSink
from watchdog.outbox import Alert, AlertState
from watchdog.scheduler import Daemon
from watchdog.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


class _NoTransport:
    def send(self, message, recipient):  # pragma: no cover - never reached in these tests
        raise AssertionError("nothing should be sent")


def test_every_job_runs_in_copenhagen_time_coalesced_one_at_a_time(tmp_path):
    settings = load_settings(None, schedule={"poll_interval_seconds": 120, "digest_day": "fri", "digest_hour": 6,
                                  "misfire_grace_seconds": 900})
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    daemon = Daemon(engine, settings, transport=_NoTransport(), replica="test")
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"poll", "deliver", "digest"}
    for job in jobs.values():
        assert str(job.trigger.timezone) == "Europe/Copenhagen"
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 900
    assert jobs["poll"].trigger.interval == timedelta(seconds=120)
    assert "day_of_week='fri'" in str(jobs["digest"].trigger) and "hour='6'" in str(jobs["digest"].trigger)


def test_a_failing_poll_is_logged_and_does_not_stop_the_daemon(tmp_path, caplog):
    # An empty database without the schema: every query fails.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    daemon = Daemon(engine, load_settings(None), transport=_NoTransport(), replica="test")
    daemon.poll_job()  # does not raise
    daemon.delivery_job()
    assert "poll round failed" in caplog.text and "delivery round failed" in caplog.text


def _wait_for(predicate, proc, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.2)  # waiting for another process, not controlling time
    proc.kill()
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {proc.communicate()[1]}")


@pytest.mark.slow  # ~10 s: a real daemon process; its shortest poll interval is 10 s
def test_watchdog_run_delivers_a_round_and_exits_0_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    engine = make_engine(url)
    upgrade(engine)
    received = utcnow() - timedelta(minutes=1)  # the daemon reads the real clock: a fresh notification
    with Session(engine) as s:
        team = Team(ext_id="T1", name="Team 1")
        s.add(team)
        s.flush()
        worker = Worker(ext_id="W1", name="Anne", email="anne@kommune.example.dk", team_id=team.id)
        s.add(worker)
        s.flush()
        case = Case(ext_id="S-100", team_id=team.id, worker_id=worker.id, opened_at=received,
                    facts_changed_at=received)
        s.add(case)
        s.flush()
        s.add(Notification(ext_id="N-1", case_id=case.id, received_at=received))
        s.commit()
    with MailSink(tmp_path / "mail") as sink:
        env = {**os.environ, "WATCHDOG_DATABASE_URL": url, "WATCHDOG_SMTP__HOST": sink.host,
               "WATCHDOG_SMTP__PORT": str(sink.port), "WATCHDOG_SCHEDULE__POLL_INTERVAL_SECONDS": "10",
               "WATCHDOG_SCHEDULE__DELIVERY_INTERVAL_SECONDS": "5", "WATCHDOG_HTTP__HEALTH_PORT": "0"}
        env.pop("WATCHDOG_CONFIG", None)
        proc = subprocess.Popen([sys.executable, "-m", "watchdog", "run"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def delivered() -> bool:
                with Session(engine) as s:
                    return any(a.state == AlertState.SENT for a in s.exec(select(Alert)).all())

            _wait_for(delivered, proc, timeout=60, what="the daemon to deliver the 24-hour warning")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "SIGTERM received" in err
        with Session(engine) as s:
            alerts = s.exec(select(Alert)).all()
        assert alerts and not [a for a in alerts if a.state == AlertState.CLAIMED]
        assert len(sink.saved) == len({a.recipient_address for a in alerts if a.state == AlertState.SENT})
    engine.dispose()
