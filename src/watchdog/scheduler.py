"""The daemon (``watchdog run``): APScheduler 3.x triggers the poll, delivery and digest rounds.

I/O: through ``watchdog.service`` and ``watchdog.delivery_round`` (database, network) and the health server. The scheduler only
triggers; the work is in ``service.poll`` / ``delivery_round.deliver`` (which ``watchdog tick`` calls too).

What was found true about APScheduler 3.x and is relied on here (STACK.md):

- ``BlockingScheduler``: jobs run in its thread pool, and ``shutdown(wait=True)`` waits for a
  running job to finish. That is how SIGTERM lets the send in progress finish: the handler sets
  ``stop`` (delivery releases the claims it has not attempted yet) and shuts down with wait.
- Every trigger gets ``timezone="Europe/Copenhagen"`` explicitly (a trigger built without one
  uses the host's zone, not the scheduler's); cron weekdays by name.
- ``coalesce=True``, ``max_instances=1`` and a generous ``misfire_grace_time``: after a pause
  (a suspended VM, a long job) a job runs once, not once per missed interval.
- Jobs live in memory only: replicas coordinate through the database (outbox keys and claims),
  never through a shared job store.
- A failing job must not stop the daemon: each job logs its exception and the next run tries
  again.
- The sources (``watchdog.intake.sources``: the drop folder, each SQL source) are jobs of their
  own beside the poll, so a slow or unreachable source never delays the deadline poll; the
  poll sees what a source imported at its next round.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from watchdog import delivery_round, service
from watchdog.clock import LOCAL_TZ, utcnow
from watchdog.db import session_scope
from watchdog.intake.sources import runner as sources
from watchdog.reports.digest import enqueue_weekly_digests

log = logging.getLogger(__name__)

TIMEZONE = "Europe/Copenhagen"


class Daemon:
    """The poll, delivery and digest jobs of one process, and its orderly stop."""

    def __init__(self, engine: Engine, settings, *, transport, replica: str,
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.transport = transport
        self.replica = replica
        self.stop = threading.Event()
        schedule = settings.schedule
        # Given per job as well as as defaults: a job added before start() keeps only what it
        # was given explicitly until the scheduler fills in its defaults.
        options = {"coalesce": True, "max_instances": 1,
                   "misfire_grace_time": schedule.misfire_grace_seconds}
        self.scheduler = BlockingScheduler(timezone=TIMEZONE, job_defaults=options)
        start = datetime.now(LOCAL_TZ)  # the first round at once, not one interval after start
        self.scheduler.add_job(
            self.poll_job, IntervalTrigger(seconds=schedule.poll_interval_seconds, timezone=TIMEZONE),
            id="poll", name="poll", next_run_time=start, **options)
        self.scheduler.add_job(
            self.delivery_job,
            IntervalTrigger(seconds=schedule.delivery_interval_seconds, timezone=TIMEZONE),
            id="deliver", name="deliver", next_run_time=start, **options)
        self.scheduler.add_job(
            self.digest_job,
            CronTrigger(day_of_week=schedule.digest_day, hour=schedule.digest_hour,
                        minute=schedule.digest_minute, timezone=TIMEZONE),
            id="digest", name="weekly digest", **options)
        intake = settings.intake
        if intake.drop_folder is not None:
            self.scheduler.add_job(
                self.drop_folder_job, IntervalTrigger(seconds=intake.drop_poll_seconds, timezone=TIMEZONE),
                id="source:drop-folder", name="drop folder", next_run_time=start, **options)
        for cfg in intake.sql_sources:
            self.scheduler.add_job(
                self.sql_source_job, IntervalTrigger(seconds=intake.sql_poll_seconds, timezone=TIMEZONE),
                args=[cfg], id=f"source:{cfg.name}", name=f"sql source {cfg.name}", next_run_time=start,
                **options)

    # Each job reads the clock here (the one place besides the CLI) and never raises.

    def poll_job(self) -> None:
        if self.stop.is_set():
            return
        try:
            service.poll(self.engine, self.settings, now=self.clock(), replica=self.replica)
        except Exception:
            log.exception("poll round failed; the next round tries again")

    def delivery_job(self) -> None:
        if self.stop.is_set():
            return
        try:
            delivery_round.deliver(self.engine, self.settings, now=self.clock(), transport=self.transport,
                                   worker_name=self.replica, stop=self.stop, clock=self.clock)
        except Exception:
            log.exception("delivery round failed; the next round tries again")

    def digest_job(self) -> None:
        if self.stop.is_set():
            return
        try:
            with session_scope(self.engine) as session:
                n = enqueue_weekly_digests(session, now=self.clock(), settings=self.settings)
            log.info("weekly digest: %d digests planned", n)
        except Exception:
            log.exception("weekly digest failed; every poll retries it")

    def drop_folder_job(self) -> None:
        if self.stop.is_set():
            return
        now = self.clock()
        sources.drop_folder_round(self.engine, self.settings, now=now, replica=self.replica)  # never raises
        sources.watch_sources(self.engine, self.settings, now=now)

    def sql_source_job(self, cfg) -> None:
        if self.stop.is_set():
            return
        now = self.clock()
        sources.sql_round(self.engine, self.settings, cfg, now=now, replica=self.replica)  # never raises
        sources.watch_sources(self.engine, self.settings, now=now)

    def request_stop(self, signum: int | None = None, _frame=None) -> None:
        """Stop after the job in progress (SIGTERM, SIGINT): finish the send, release the rest."""
        if self.stop.is_set():
            return
        name = signal.Signals(signum).name if signum else "stop"
        log.info("%s received: finishing the round in progress, then exiting", name)
        self.stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def run(self) -> int:
        """Block until stopped. Returns the exit code (0 after an orderly stop)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        log.info("watchdog run: replica %s, poll every %ds, delivery every %ds, digest %s %02d:%02d %s",
                 self.replica, self.settings.schedule.poll_interval_seconds,
                 self.settings.schedule.delivery_interval_seconds, self.settings.schedule.digest_day,
                 self.settings.schedule.digest_hour, self.settings.schedule.digest_minute, TIMEZONE)
        self.scheduler.start()  # blocks; returns once shutdown() has run
        log.info("watchdog run: stopped")
        return 0
