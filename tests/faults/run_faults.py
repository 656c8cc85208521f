#!/usr/bin/env python3
"""Fault test: several `watchdog run` replicas on one PostgreSQL, under faults, deliver every alert once.

    .venv/bin/python tests/faults/run_faults.py                      # the full run (README figures)
    .venv/bin/python tests/faults/run_faults.py --alerts 200 --no-postgres-restart   # a quick one

What it does, all against real parts (the real CLI in subprocesses, the local PostgreSQL, a real
SMTP server in this process):

1. A fresh PostgreSQL schema, migrated; N due alerts in the outbox, each to its own mailbox
   (``r<i>@faults.invalid``) with its key in the subject (``[fault:<i>]``), so the SMTP server
   counts arrivals by unique key.
2. R ``watchdog run`` replicas (short claim timeout and retry backoff, so the run is quick).
3. Faults, each triggered by progress as counted at the server:
   - at 10 %: SIGKILL one replica while it holds claims (mid-delivery). Its claims expire and the
     others take them again after the claim timeout.
   - at 30 %: the SMTP server is stopped for ``--smtp-outage`` seconds and started again. Sends
     fail meanwhile and are retried with backoff.
   - at 60 %: PostgreSQL is restarted (``pg_ctlcluster … restart``; root on the local cluster
     only; ``--no-postgres-restart`` skips it). The replicas must reconnect and go on.
4. Drained when every key has arrived and the outbox holds nothing unsent; then SIGTERM, and each
   surviving replica must exit 0 (an orderly stop, no crash).
5. Separately: a replica started while its database does not exist yet retries with backoff and
   goes on once the database appears.

Figures: alerts, delivered (unique keys), duplicates, lost, time to drain, restarts. Exit 0 when
none is lost, none is duplicated (beyond what ``--allow-duplicates`` admits) and no surviving
replica crashed — except the one message the killed replica may have had in flight: accepted by
the SMTP server in the instant before SIGKILL and not yet recorded, it is sent again after the
claim expires. That duplicate is reported apart (``duplicates_in_flight_at_kill``, at most 1). The whole run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import collections
import email
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY_RE = re.compile(r"\[fault:(\d+)\]")
# The command line of the CLI under test (WATCHDOG_FAULTS_CLI overrides, e.g. an installed `watchdog`).
WATCHDOG = os.environ.get("WATCHDOG_FAULTS_CLI", f"{sys.executable} -m watchdog").split()


# --- the SMTP server that counts ------------------------------------------------------------------

class CountingHandler:
    """Counts each message by the alert key in its subject (and remembers the mailbox)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: collections.Counter[int] = collections.Counter()
        self.other = 0  # messages without a fault key (none are expected)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        subject = str(email.header.make_header(email.header.decode_header(msg.get("Subject", ""))))
        match = KEY_RE.search(subject)
        with self.lock:
            if match:
                self.counts[int(match.group(1))] += 1
            else:
                self.other += 1
        return "250 OK"

    def snapshot(self) -> tuple[int, int]:
        """(unique keys received, messages received)."""
        with self.lock:
            return len(self.counts), sum(self.counts.values())


class SmtpServer:
    """An aiosmtpd server on a fixed port that can be stopped and started again."""

    def __init__(self, handler: CountingHandler, port: int):
        self.handler, self.port = handler, port
        self.controller: Controller | None = None

    def start(self) -> None:
        for _ in range(50):  # the port may linger for a moment after a stop
            try:
                self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
                self.controller.start()
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError(f"cannot start the SMTP server on port {self.port}")

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the database -------------------------------------------------------------------------------

def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def enqueue_alerts(engine, n: int, *, now: datetime) -> int:
    from sqlmodel import Session

    from watchdog.outbox import AlertKind, Channel, NewAlert, enqueue

    def payload(i: int) -> dict:
        subject = f"[fault:{i}] Fristvarsel (fejltest)"
        body = f"Fejltest: advarsel nummer {i}."
        try:
            from watchdog.render import Message, message_to_payload

            return message_to_payload(Message(subject=subject, text=body, html=f"<p>{body}</p>", card={}))
        except ImportError:  # the renderer's payload shape, spelled out
            return {"subject": subject, "text": body, "html": f"<p>{body}</p>", "card": {}}

    alerts = [NewAlert(key=f"fault:{i}", kind=AlertKind.TEST, stage="fault", recipient_address=f"r{i}@faults.invalid",
                       channel=Channel.EMAIL, send_after=now, payload=payload(i)) for i in range(n)]
    with Session(engine) as session:
        inserted = enqueue(session, alerts, now=now)
        session.commit()
    return inserted


def outbox_states(engine) -> dict[str, int]:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from watchdog.outbox import Alert

    with Session(engine) as session:
        return {str(getattr(state, "value", state)): n
                for state, n in session.exec(select(Alert.state, func.count()).group_by(Alert.state))}


def claims_of(engine, replica: str) -> int:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from watchdog.outbox import Alert, AlertState

    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Alert).where(
            Alert.state == AlertState.CLAIMED, Alert.claimed_by == replica)).one()


# --- replicas -----------------------------------------------------------------------------------

def claimed_numbers_of(engine, replica: str) -> set[int]:
    """The alert numbers (key ``fault:N``) a replica holds claims on."""
    from sqlmodel import Session, select

    from watchdog.outbox import Alert, AlertState

    with Session(engine) as session:
        keys = session.exec(select(Alert.key).where(
            Alert.state == AlertState.CLAIMED, Alert.claimed_by == replica)).all()
    return {int(k.split(":", 1)[1]) for k in keys if k.startswith("fault:")}


def write_config(folder: Path, *, smtp_port: int, claim_timeout: int = 60, batch_size: int = 25) -> Path:
    path = folder / "watchdog.toml"
    path.write_text(f"""
log_level = "INFO"
log_format = "json"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
mode = "plain"
timeout_seconds = 5

[delivery]
max_attempts = 100          # nothing may die during the faults
backoff_base_seconds = 1
backoff_max_seconds = 4
claim_timeout_seconds = {claim_timeout}  # a killed replica's claims come back (> one batch's sends)
batch_size = {batch_size}

[schedule]
poll_interval_seconds = 10
delivery_interval_seconds = 5

[http]
health_port = 0
""", encoding="utf-8")
    return path


@dataclass
class Replica:
    index: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def name(self) -> str:  # watchdog.ops.heartbeat.default_replica_name() of the child
        return f"{socket.gethostname()}-{self.proc.pid}"


def start_replica(index: int, *, config: Path, database_url: str, folder: Path) -> Replica:
    log_path = folder / f"replica-{index}.log"
    env = {**os.environ, "WATCHDOG_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_DEBUG", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*WATCHDOG, "--config", str(config), "run"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    return Replica(index, proc, log_path)


def restart_postgres() -> float:
    """Restart the local cluster; returns how long it was down (s)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.monotonic()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, capture_output=True, timeout=120)
    for _ in range(120):
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0:
            break
        time.sleep(0.25)
    return time.monotonic() - started


def can_restart_postgres() -> bool:
    return (os.geteuid() == 0 and shutil.which("pg_ctlcluster") is not None
            and Path("/etc/postgresql").is_dir())


# --- the run ------------------------------------------------------------------------------------

@dataclass
class Figures:
    alerts: int
    replicas: int
    delivered_unique: int = 0
    messages_received: int = 0
    duplicates: int = 0
    lost: int = 0
    drained: bool = False
    seconds_to_drain: float | None = None
    outbox_final: dict = field(default_factory=dict)
    killed_replica_claims_at_kill: int | None = None
    # A message the SMTP server accepted in the instant before SIGKILL, before its owner could
    # record it, is sent again by another replica: at-least-once can do no better without the
    # receiver's help. Such duplicates are counted apart; any other duplicate is a defect.
    duplicates_in_flight_at_kill: int = 0
    duplicates_unexplained: int = 0
    smtp_outage_seconds: float = 0.0
    postgres_restart_seconds: float | None = None
    exit_codes: dict = field(default_factory=dict)
    crashed_replicas: list = field(default_factory=list)
    events: list = field(default_factory=list)
    late_database: dict = field(default_factory=dict)


def run(*, alerts: int, replicas: int, pg_url: str, smtp_outage: float, restart_pg: bool,
        timeout: float, keep: bool = False, late_database: bool = True, claim_timeout: int = 60,
        batch_size: int = 25) -> Figures:
    from watchdog.db import make_engine, upgrade

    deadline = time.monotonic() + timeout
    figures = Figures(alerts=alerts, replicas=replicas)
    folder = Path(tempfile.mkdtemp(prefix="watchdog-faults-"))
    schema = f"wdfault_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = schema_url(pg_url, schema)
    engine = make_engine(url)
    handler = CountingHandler()
    smtp = SmtpServer(handler, free_port())
    procs: list[Replica] = []
    t0 = time.monotonic()

    def event(what: str) -> None:
        figures.events.append(f"{time.monotonic() - t0:7.1f}s {what}")
        print(figures.events[-1], flush=True)

    try:
        upgrade(engine)
        smtp.start()
        config = write_config(folder, smtp_port=smtp.port, claim_timeout=claim_timeout, batch_size=batch_size)
        n = enqueue_alerts(engine, alerts, now=datetime.now(UTC))
        assert n == alerts, f"enqueued {n} of {alerts}"
        t0 = time.monotonic()
        event(f"{alerts} alerts due; starting {replicas} replicas (logs in {folder})")
        procs = [start_replica(i, config=config, database_url=url, folder=folder) for i in range(replicas)]
        victim = procs[0]
        killed = smtp_done = pg_done = False
        held_at_kill: set[int] = set()
        while time.monotonic() < deadline:
            unique, messages = handler.snapshot()
            progress = unique / alerts
            if not killed and progress >= 0.10:
                # Kill while it holds claims: that is "mid-delivery".
                claims = claims_of(engine, victim.name)
                if claims or progress >= 0.5:
                    held_at_kill = claimed_numbers_of(engine, victim.name)
                    victim.proc.send_signal(signal.SIGKILL)
                    victim.proc.wait(timeout=10)
                    figures.killed_replica_claims_at_kill = claims
                    killed = True
                    event(f"SIGKILL replica {victim.index} ({victim.name}) holding {claims} claims; {unique} delivered")
            if killed and not smtp_done and progress >= 0.30:
                smtp.stop()
                event(f"SMTP server stopped; {unique} delivered")
                time.sleep(smtp_outage)
                smtp.start()
                figures.smtp_outage_seconds = smtp_outage
                smtp_done = True
                event(f"SMTP server started again; {handler.snapshot()[0]} delivered")
            if smtp_done and not pg_done and restart_pg and progress >= 0.60:
                event(f"restarting PostgreSQL; {unique} delivered")
                engine.dispose()
                figures.postgres_restart_seconds = round(restart_postgres(), 2)
                pg_done = True
                event(f"PostgreSQL back after {figures.postgres_restart_seconds}s")
            if unique == alerts:
                try:
                    states = outbox_states(engine)
                except Exception:  # PostgreSQL may still be coming back
                    states = {}
                if states and not states.get("pending") and not states.get("claimed"):
                    figures.drained = True
                    figures.seconds_to_drain = round(time.monotonic() - t0, 1)
                    event(f"drained: every alert delivered; outbox {states}")
                    break
            for r in procs:
                if r is not victim and r.proc.poll() is not None and r.index not in figures.crashed_replicas:
                    figures.crashed_replicas.append(r.index)
                    event(f"replica {r.index} exited by itself with code {r.proc.returncode}")
            if all(r.proc.poll() is not None for r in procs):
                event("every replica has exited: giving up")
                break
            time.sleep(0.2)
        else:
            event("time limit reached before the outbox drained")
        # An orderly stop: SIGTERM, and every surviving replica must exit 0.
        for r in procs:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in procs:
            try:
                r.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
            figures.exit_codes[r.index] = r.proc.returncode
        time.sleep(0.5)  # let a last message in flight arrive before counting
        figures.outbox_final = outbox_states(engine)
        counts = handler.counts
        figures.delivered_unique = len(counts)
        figures.messages_received = sum(counts.values())
        figures.duplicates = sum(c - 1 for c in counts.values() if c > 1)
        doubled = {k for k, c in counts.items() if c > 1}
        in_flight = doubled & held_at_kill
        figures.duplicates_in_flight_at_kill = sum(counts[k] - 1 for k in in_flight)
        figures.duplicates_unexplained = figures.duplicates - figures.duplicates_in_flight_at_kill
        figures.lost = alerts - sum(1 for k in range(alerts) if counts.get(k))
        if late_database and time.monotonic() < deadline:
            figures.late_database = run_late_database(pg_url, folder, smtp_port=smtp.port)
    finally:
        for r in procs:
            if r.proc.poll() is None:
                r.proc.kill()
        smtp.stop()
        engine.dispose()
        try:
            if not keep:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            else:
                print(f"kept: schema {schema}, logs in {folder}")
        finally:
            admin.dispose()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return figures


def run_late_database(pg_url: str, folder: Path, *, smtp_port: int) -> dict:
    """A replica whose database does not exist at start: it retries with backoff, then goes on."""
    from sqlalchemy.engine import make_url

    from watchdog.db import make_engine, upgrade

    name = f"wdlate_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    base = make_url(pg_url)
    admin = make_engine(base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    url = base.set(database=name).render_as_string(hide_password=False)
    config = write_config(folder, smtp_port=smtp_port)
    replica = start_replica(99, config=config, database_url=url, folder=folder)
    result: dict = {"database": name}
    try:
        for _ in range(100):  # the first retries come 1 s and 2 s apart; allow for a slow start
            time.sleep(0.2)
            log = replica.log_path.read_text(errors="replace")
            if log.count("database unreachable (attempt") >= 2 or replica.proc.poll() is not None:
                break
        result["retries_logged"] = log.count("database unreachable (attempt")
        result["alive_while_waiting"] = replica.proc.poll() is None
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        late = make_engine(url)
        upgrade(late)
        ok = False
        for _ in range(100):  # the next attempt is at most 4 s away; then the first poll
            with late.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM service_heartbeat WHERE last_poll_ok_at IS NOT NULL")
                                ).scalar_one():
                    ok = True
                    break
            time.sleep(0.2)
        late.dispose()
        result["polled_once_database_appeared"] = ok
        replica.proc.send_signal(signal.SIGTERM)
        result["exit_code"] = replica.proc.wait(timeout=60)
    finally:
        if replica.proc.poll() is None:
            replica.proc.kill()
            replica.proc.wait()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return result


def verdict(f: Figures, *, allow_duplicates: int = 0) -> list[str]:
    """What is wrong, if anything (empty list: the run passed)."""
    problems = []
    if f.lost:
        problems.append(f"{f.lost} alerts never arrived")
    if f.duplicates_unexplained > allow_duplicates:
        problems.append(f"{f.duplicates_unexplained} duplicate messages not explained by the SIGKILL "
                        f"(allowed {allow_duplicates})")
    if f.duplicates_in_flight_at_kill > 1:
        problems.append(f"{f.duplicates_in_flight_at_kill} duplicates of the killed replica's claims: "
                        "a replica sends one message at a time, so at most one can be in flight")
    if not f.drained:
        problems.append("the outbox did not drain in time")
    if f.crashed_replicas:
        problems.append(f"replicas {f.crashed_replicas} exited by themselves")
    bad_exits = {i: c for i, c in f.exit_codes.items() if i != 0 and c != 0}
    if bad_exits:
        problems.append(f"replicas did not stop cleanly on SIGTERM: {bad_exits}")
    if f.outbox_final.get("dead"):
        problems.append(f"{f.outbox_final['dead']} alerts dead-lettered")
    late = f.late_database
    if late and not (late.get("retries_logged", 0) >= 1 and late.get("alive_while_waiting")
                     and late.get("polled_once_database_appeared") and late.get("exit_code") == 0):
        problems.append(f"late database scenario failed: {late}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("WATCHDOG_FAULTS_PG_URL", DEFAULT_PG))
    parser.add_argument("--smtp-outage", type=float, default=15.0, help="seconds the SMTP server is down")
    parser.add_argument("--no-postgres-restart", action="store_true", help="skip the PostgreSQL restart")
    parser.add_argument("--timeout", type=float, default=900.0, help="the whole run stops after this (s)")
    parser.add_argument("--allow-duplicates", type=int, default=0)
    parser.add_argument("--claim-timeout", type=int, default=60, help="delivery.claim_timeout_seconds")
    parser.add_argument("--batch-size", type=int, default=25, help="delivery.batch_size")
    parser.add_argument("--keep", action="store_true", help="keep the replicas' logs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    restart_pg = not args.no_postgres_restart
    if restart_pg and not can_restart_postgres():
        print("cannot restart PostgreSQL here (needs root and pg_ctlcluster); use --no-postgres-restart",
              file=sys.stderr)
        return 2
    figures = run(alerts=args.alerts, replicas=args.replicas, pg_url=args.pg_url, smtp_outage=args.smtp_outage,
                  restart_pg=restart_pg, timeout=args.timeout, keep=args.keep,
                  claim_timeout=args.claim_timeout, batch_size=args.batch_size)
    problems = verdict(figures, allow_duplicates=args.allow_duplicates)
    if args.json:
        print(json.dumps(asdict(figures) | {"problems": problems}, indent=2))
    else:
        print(f"alerts {figures.alerts}, replicas {figures.replicas}: delivered {figures.delivered_unique}, "
              f"duplicates {figures.duplicates}, lost {figures.lost}, drained in {figures.seconds_to_drain}s; "
              f"outbox {figures.outbox_final}; exit codes {figures.exit_codes}; late database {figures.late_database}")
        print("PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
