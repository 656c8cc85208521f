"""The replica heartbeat: one row per running process, and the outside heartbeat URL.

I/O: the database (table ``service_heartbeat``) and one HTTP GET to ``settings.http.heartbeat_url``.

Readiness and the "last successful poll" metric are read from this table, not from process
memory, so they hold across replicas and restarts: ``/readyz`` on any replica (or on the API)
answers for the service as a whole, and a fault test can watch every replica from outside.
The heartbeat URL is for an outside monitor (healthchecks.io, Uptime Kuma, …) that wants to
learn when watchdog itself stops: it is called after every successful round only, so silence
means trouble. A failing heartbeat is logged and never stops the round.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from watchdog.clock import ensure_aware

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_SECONDS = 5.0
# A replica that has not reported for this long is gone (its pod was replaced, its host renamed):
# its row is pruned so that the table stays one row per live process.
STALE_REPLICA_AFTER = timedelta(days=7)
# A replica that stopped in order (SIGTERM) is shown as stopped for a day, then pruned.
STOPPED_REPLICA_KEPT = timedelta(days=1)


class ServiceHeartbeat(SQLModel, table=True):
    """The last rounds of one ``watchdog run``/``tick`` process (a replica)."""

    __tablename__ = "service_heartbeat"
    replica: str = Field(primary_key=True, max_length=200)
    started_at: datetime
    last_round_at: datetime
    last_poll_ok_at: datetime | None = Field(default=None, index=True)
    last_poll_duration_s: float | None = None
    last_error_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    rounds_ok: int = 0
    rounds_failed: int = 0
    stopped_at: datetime | None = None  # set by an orderly stop; cleared by the next round


def default_replica_name() -> str:
    """host-pid: unique among processes that run at the same time on one database (`watchdog run`)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def tick_replica_name() -> str:
    """The host name: every `watchdog tick` from one cron table reports as the same replica, so the
    heartbeat table and the metrics do not grow by one name per run. (A Kubernetes CronJob's pods
    each get a new host name: give it ``--replica``.)"""
    return socket.gethostname()


def replica_state(row: ServiceHeartbeat, *, now: datetime, silent_after_seconds: int) -> str:
    """``running``, ``stopped`` (in order) or ``silent`` (no round for longer than the readiness limit)."""
    if row.stopped_at is not None and row.stopped_at >= row.last_round_at:
        return "stopped"
    if (now - ensure_aware(row.last_round_at)).total_seconds() > silent_after_seconds:
        return "silent"
    return "running"


def mark_stopped(engine: Engine, *, replica: str, now: datetime) -> None:
    """Record an orderly stop of ``replica``. Never raises: the process is exiting anyway."""
    try:
        with Session(engine) as session:
            row = session.get(ServiceHeartbeat, replica)
            if row is not None:
                row.stopped_at = ensure_aware(now, what="now")
                session.commit()
    except Exception as exc:
        log.warning("cannot record the stop of replica %s: %s", replica,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def record_round(session: Session, *, replica: str, ok: bool, now: datetime,
                 duration_s: float | None = None, error: str | None = None) -> ServiceHeartbeat:
    """Upsert the replica's row for one finished round (the caller commits)."""
    now = ensure_aware(now, what="now")
    row = session.get(ServiceHeartbeat, replica)
    if row is None:
        row = ServiceHeartbeat(replica=replica, started_at=now, last_round_at=now)
        session.add(row)
    row.last_round_at = now
    row.stopped_at = None
    if ok:
        row.last_poll_ok_at = now
        row.last_poll_duration_s = duration_s
        row.rounds_ok += 1
    else:
        row.last_error_at = now
        row.last_error = (error or "unknown error")[:2000]
        row.rounds_failed += 1
    session.execute(delete(ServiceHeartbeat).where(
        ServiceHeartbeat.replica != replica,
        or_(ServiceHeartbeat.last_round_at < now - STALE_REPLICA_AFTER,
            ServiceHeartbeat.stopped_at < now - STOPPED_REPLICA_KEPT)))
    return row


def replicas(session: Session) -> list[ServiceHeartbeat]:
    return list(session.exec(select(ServiceHeartbeat).order_by(ServiceHeartbeat.replica)))


def last_successful_poll(session: Session, *, replica: str | None = None) -> datetime | None:
    """The newest successful poll of ``replica``, or of any replica when None."""
    query = select(ServiceHeartbeat.last_poll_ok_at).where(ServiceHeartbeat.last_poll_ok_at.is_not(None))
    if replica is not None:
        query = query.where(ServiceHeartbeat.replica == replica)
    return session.exec(query.order_by(ServiceHeartbeat.last_poll_ok_at.desc()).limit(1)).first()


def call_heartbeat_url(url: str, *, timeout: float = HEARTBEAT_TIMEOUT_SECONDS) -> bool:
    """GET the heartbeat URL; True on a 2xx. Logs (with the URL masked) and returns False otherwise."""
    from watchdog.settings_urls import mask_url

    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "frist-watchdog"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (operator's URL)
            status = response.status
    except urllib.error.HTTPError as exc:
        log.warning("heartbeat %s answered HTTP %s", mask_url(url), exc.code)
        return False
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        log.warning("heartbeat %s failed: %s", mask_url(url), reason)
        return False
    if not 200 <= status < 300:
        log.warning("heartbeat %s answered HTTP %s", mask_url(url), status)
        return False
    log.debug("heartbeat %s answered HTTP %s", mask_url(url), status)
    return True


def round_finished(engine: Engine, settings, *, replica: str, ok: bool, now: datetime,
                   duration_s: float | None = None, error: str | None = None) -> None:
    """Everything ops wants to know after one poll round. Never raises: ops must not stop the work.

    Records the in-process metrics, stores the heartbeat row and, after a successful round,
    calls the heartbeat URL.
    """
    from watchdog.ops import metrics

    metrics.record_poll(duration_s, ok, now)
    try:
        with Session(engine, expire_on_commit=False) as session:
            record_round(session, replica=replica, ok=ok, now=now, duration_s=duration_s, error=error)
            session.commit()
    except Exception as exc:  # the database may be down: that is what readiness will show
        log.warning("cannot store the heartbeat of replica %s: %s", replica,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return
    if ok and settings.http.heartbeat_url:
        call_heartbeat_url(settings.http.heartbeat_url)
