"""The demo: a synthetic municipality, every deadline computed, every due alert delivered.

I/O: creates a SQLite database and a folder of delivered messages (``demo-out/`` by default),
starts a local SMTP server (``watchdog.mailsink``), and runs the same poll and delivery rounds as
the service (``watchdog.service.tick``): Apprise sends real SMTP to the local server, which saves
each message as an .eml file.
"""

from __future__ import annotations

import json

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, func, select

from watchdog.casestore import Case
from watchdog.db import make_engine, session_scope, upgrade
from watchdog.deadlines import Deadline
from watchdog.demo_data import Scale, generate, populate
from watchdog.mailsink import MailSink
from watchdog.outbox import Alert, AlertState
from watchdog.settings import Settings, load_settings


@dataclass
class DemoResult:
    out: Path
    database_url: str
    rows: dict[str, int]
    deadlines_by_status: Counter = field(default_factory=Counter)
    deadlines_by_duty_status: Counter = field(default_factory=Counter)
    alerts_by_state: Counter = field(default_factory=Counter)
    messages: list[Path] = field(default_factory=list)
    rounds: int = 0


def demo_settings(out: Path, smtp_port: int, base: Settings | None = None) -> Settings:
    """The demo's own settings: its database and the local SMTP server; the rest as configured."""
    overrides: dict = {
        "database_url": f"sqlite:///{out / 'watchdog-demo.db'}",
        "municipality": "Demo Kommune",
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "mode": "plain",
                 "from_address": "frister@demo-kommune.dk", "from_name": "Frister (demo)"},
        # One round can take the whole backlog, so each recipient gets one grouped message.
        "delivery": {"batch_size": 10000},
    }
    return load_settings(None, **overrides)


def run_demo(*, out: Path, seed: int, now: datetime, scale: Scale = Scale(),
             progress=lambda message: None, max_rounds: int = 50) -> DemoResult:
    """Build the municipality and run poll + delivery rounds until nothing due is left."""
    from watchdog.delivery import Transport
    from watchdog.delivery_round import deliver
    from watchdog.service import poll

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    mail_dir = out / "mail"
    out.mkdir(parents=True)
    with MailSink(mail_dir) as sink:
        settings = demo_settings(out, sink.port)
        engine = make_engine(settings.database_url_value)
        try:
            progress("creating the database")
            upgrade(engine)
            progress(f"generating a municipality (seed {seed}, {scale.cases} cases)")
            with session_scope(engine) as session:
                rows = populate(session, generate(seed, now, scale))
            result = DemoResult(out=out, database_url=settings.database_url_value, rows=rows)
            # So that later commands (reports: their title names the municipality) see the demo's
            # settings: `watchdog --config demo-out/watchdog.toml report barometer …`.
            (out / "watchdog.toml").write_text(
                f"database_url = {json.dumps(settings.database_url_value)}\n"
                f"municipality = {json.dumps(settings.municipality, ensure_ascii=False)}\n", encoding="utf-8")
            progress("computing deadlines and planning alerts")
            poll(engine, settings, now=now)
            transport = Transport(settings)
            progress("delivering alerts to the local SMTP server")
            for result.rounds in range(1, max_rounds + 1):
                report = deliver(engine, settings, now=now, transport=transport, worker_name="demo")
                if not _pending_due(engine, now):
                    break
                del report
            with Session(engine) as session:
                for duty, status, n in session.exec(
                    select(Deadline.duty, Deadline.status, func.count()).group_by(Deadline.duty, Deadline.status)
                ):
                    result.deadlines_by_status[str(status.value)] += n
                    result.deadlines_by_duty_status[(str(duty.value), str(status.value))] += n
                for state, n in session.exec(select(Alert.state, func.count()).group_by(Alert.state)):
                    result.alerts_by_state[str(state.value)] += n
                result.rows["active_cases"] = session.exec(
                    select(func.count()).select_from(Case).where(Case.closed_at.is_(None))).one()
            result.messages = sink.saved
            return result
        finally:
            engine.dispose()


def _pending_due(engine, now: datetime) -> bool:
    with Session(engine) as session:
        return session.exec(
            select(func.count()).select_from(Alert).where(
                Alert.state == AlertState.PENDING, Alert.next_attempt_at <= now)
        ).one() > 0


def demo_web_settings(database_url: str) -> Settings:
    """Settings to serve the demo's web app: its database, the demo sign-in, loopback, plain http."""
    return load_settings(None, database_url=database_url, municipality="Demo Kommune",
                         http={"host": "127.0.0.1"}, web={"demo_login": True, "secure_cookies": False})


def demo_sign_ins(engine) -> list[tuple[str, str, str]]:
    """(role in Danish, worker id, name) of one caseworker, one leader and the head to sign in as."""
    from watchdog.casestore import Worker, WorkerRole

    picks: list[tuple[str, str, str]] = []
    with Session(engine) as session:
        for label, role in (("rådgiver", WorkerRole.CASEWORKER), ("teamleder", WorkerRole.LEADER),
                            ("afdelingsleder", WorkerRole.HEAD), ("it-drift", WorkerRole.ADMIN)):
            query = select(Worker).where(Worker.role == role, Worker.active == True).order_by(Worker.ext_id)
            if role == WorkerRole.CASEWORKER:
                # One with deadlines of their own, so Mine frister has something to show.
                query = query.where(Worker.id.in_(select(Deadline.responsible_worker_id)))
            worker = session.exec(query).first()
            if worker is not None:
                picks.append((label, worker.ext_id, worker.name))
    return picks
