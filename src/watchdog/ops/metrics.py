"""Prometheus metrics: in-process counters for this process's work, database gauges at scrape time.

I/O: reads the database when scraped (with a short cache and a time limit), nothing else.

Two kinds of figures, kept apart on purpose:

- What *this process* did (poll durations, deliveries it made): counters and a histogram in
  process memory, recorded by ``record_poll`` and ``record_delivery``. Prometheus sums them over
  replicas.
- What *the service* looks like (deadlines by status and duty, alerts by state, the age of the
  oldest unsent alert, each replica's last successful poll): computed from the database when
  scraped, so every replica reports the same numbers and they survive restarts. A slow or
  unreachable database must not hang the scrape: the query runs in a worker thread with a time
  limit, and on a timeout or error the last good figures are served with ``watchdog_db_up 0``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from watchdog.clock import utcnow

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
SCRAPE_CACHE_SECONDS = 10.0
SCRAPE_TIME_LIMIT_SECONDS = 3.0

# In-process metrics live in their own registry (not prometheus_client's global one), so that an
# embedding application or a test can never register them twice.
REGISTRY = CollectorRegistry(auto_describe=True)

POLL_DURATION = Histogram(
    "watchdog_poll_duration_seconds", "Duration of one poll round (deadlines, planning, outbox).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=REGISTRY)
POLLS = Counter("watchdog_polls", "Poll rounds finished by this process, by result.",
                ["result"], registry=REGISTRY)
LAST_POLL_OK = Gauge("watchdog_process_last_poll_ok_timestamp_seconds",
                     "When this process last finished a poll round successfully (Unix time).",
                     registry=REGISTRY)
DELIVERIES = Counter("watchdog_deliveries", "Delivery attempts made by this process, by channel and result "
                     "(sent, accepted, failed, dead).", ["channel", "result"], registry=REGISTRY)

DELIVERY_RESULTS = ("sent", "accepted", "failed", "dead")
for _result in ("ok", "error"):
    POLLS.labels(result=_result)


def record_poll(duration_s: float | None, ok: bool, now: datetime) -> None:
    """One poll round finished (called by ``heartbeat.round_finished``, or directly)."""
    POLLS.labels(result="ok" if ok else "error").inc()
    if duration_s is not None:
        POLL_DURATION.observe(max(0.0, duration_s))
    if ok:
        LAST_POLL_OK.set(now.timestamp())


def record_delivery(channel: str, result: str, count: int = 1) -> None:
    """``count`` delivery attempts on ``channel`` ended with ``result`` (sent/accepted/failed/dead)."""
    if result not in DELIVERY_RESULTS:
        raise ValueError(f"unknown delivery result {result!r} (one of {', '.join(DELIVERY_RESULTS)})")
    DELIVERIES.labels(channel=str(channel), result=result).inc(count)


# --- database gauges -----------------------------------------------------------------------

@dataclass
class DbFigures:
    deadlines: list[tuple[str, str, int]] = field(default_factory=list)  # (duty, status, n)
    alerts: list[tuple[str, str, int]] = field(default_factory=list)  # (state, channel, n)
    failed_attempts: int = 0
    oldest_unsent_age_s: float = 0.0
    replicas: list[tuple[str, float | None]] = field(default_factory=list)  # (replica, last ok ts)
    # (source, last successful read ts, rows read, batches imported, batches refused)
    sources: list[tuple[str, float | None, int, int, int]] = field(default_factory=list)
    failing_cases: int = 0  # cases whose rules raise (recompute_failure rows)
    dirty_cases: int = 0  # cases whose changed facts no recompute has handled yet


def read_db_figures(session: Session, *, now: datetime) -> DbFigures:
    """The service-wide figures, from the database."""
    from watchdog.deadline_marks import count_dirty, count_failures
    from watchdog.deadlines import Deadline
    from watchdog.ops.heartbeat import ServiceHeartbeat
    from watchdog.outbox import Alert, AlertState, DeliveryAttempt

    figures = DbFigures()
    for duty, status, n in session.exec(
            select(Deadline.duty, Deadline.status, func.count()).group_by(Deadline.duty, Deadline.status)):
        figures.deadlines.append((_value(duty), _value(status), n))
    for state, channel, n in session.exec(
            select(Alert.state, Alert.channel, func.count()).group_by(Alert.state, Alert.channel)):
        figures.alerts.append((_value(state), _value(channel), n))
    figures.failed_attempts = session.exec(
        select(func.count()).select_from(DeliveryAttempt).where(DeliveryAttempt.ok == False)  # noqa: E712
    ).one()
    # "Unsent" means due and not yet out: waiting (first try or retry) or held by a claim.
    oldest = session.exec(select(Alert.send_after).where(
        Alert.state.in_([AlertState.PENDING, AlertState.CLAIMED]), Alert.send_after <= now)
        .order_by(Alert.send_after).limit(1)).first()
    if oldest is not None:
        figures.oldest_unsent_age_s = max(0.0, (now - oldest).total_seconds())
    # A replica that stopped in order is no longer reported (its series ends, as Prometheus expects).
    for row in session.exec(select(ServiceHeartbeat.replica, ServiceHeartbeat.last_poll_ok_at)
                            .where(ServiceHeartbeat.stopped_at.is_(None))):
        replica, last_ok = row
        figures.replicas.append((replica, _timestamp(last_ok)))
    from watchdog.intake.sources.state import SourceState

    for row in session.exec(select(SourceState)):
        figures.sources.append((row.name, _timestamp(row.last_ok_at), row.rows_read, row.batches_ok,
                                row.batches_refused))
    figures.failing_cases = count_failures(session)
    figures.dirty_cases = count_dirty(session)
    return figures


def _value(x) -> str:
    return getattr(x, "value", str(x))


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class DatabaseCollector:
    """A prometheus_client collector that reads ``DbFigures`` with a cache and a time limit."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow,
                 cache_seconds: float = SCRAPE_CACHE_SECONDS,
                 time_limit_seconds: float = SCRAPE_TIME_LIMIT_SECONDS):
        self.engine = engine
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.time_limit_seconds = time_limit_seconds
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-db")
        self._pending = None  # a query still running from an earlier scrape
        self._figures: DbFigures | None = None
        self._fetched_at = 0.0
        self._up = False
        self._scrape_seconds = 0.0

    def _query(self) -> DbFigures:
        with Session(self.engine) as session:
            return read_db_figures(session, now=self.clock())

    def refresh(self) -> None:
        """Bring the figures up to date unless the cache is fresh; never blocks past the limit."""
        with self._lock:
            if self._up and time.monotonic() - self._fetched_at < self.cache_seconds:
                return
            started = time.monotonic()
            # A query that overran an earlier scrape is awaited, not duplicated: a slow database
            # must not pile up one connection per scrape.
            if self._pending is None:
                self._pending = self._executor.submit(self._query)
            try:
                figures = self._pending.result(timeout=self.time_limit_seconds)
            except FutureTimeout:
                log.warning("metrics: the database did not answer within %.1fs", self.time_limit_seconds)
                self._up = False
                return
            except Exception as exc:
                self._pending = None
                log.warning("metrics: cannot read the database: %s",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                self._up = False
                return
            self._pending = None
            self._figures, self._up = figures, True
            self._fetched_at = time.monotonic()
            self._scrape_seconds = self._fetched_at - started

    def collect(self) -> Iterator[Metric]:
        self.refresh()
        up = GaugeMetricFamily("watchdog_db_up", "1 if the database answered the last metrics query in time.")
        up.add_metric([], 1.0 if self._up else 0.0)
        yield up
        took = GaugeMetricFamily("watchdog_db_scrape_seconds", "How long the last database metrics query took.")
        took.add_metric([], self._scrape_seconds)
        yield took
        figures = self._figures
        if figures is None:
            return
        deadlines = GaugeMetricFamily("watchdog_deadlines", "Deadlines by duty and status.",
                                      labels=["duty", "status"])
        for duty, status, n in figures.deadlines:
            deadlines.add_metric([duty, status], n)
        yield deadlines
        alerts = GaugeMetricFamily(
            "watchdog_alerts", "Alerts in the outbox by state (pending and claimed are queued; sent, "
            "accepted; dead = dead-lettered) and channel.", labels=["state", "channel"])
        for state, channel, n in figures.alerts:
            alerts.add_metric([state, channel], n)
        yield alerts
        failed = GaugeMetricFamily("watchdog_delivery_attempts_failed",
                                   "Failed delivery attempts recorded in the database (all replicas).")
        failed.add_metric([], figures.failed_attempts)
        yield failed
        oldest = GaugeMetricFamily("watchdog_oldest_unsent_alert_age_seconds",
                                   "Age of the oldest alert that is due and not yet delivered (0 if none).")
        oldest.add_metric([], figures.oldest_unsent_age_s)
        yield oldest
        failing = GaugeMetricFamily("watchdog_cases_failing_recompute",
                                    "Cases whose deadlines cannot be computed (their rules raise); "
                                    "see watchdog health.")
        failing.add_metric([], figures.failing_cases)
        yield failing
        dirty = GaugeMetricFamily("watchdog_cases_awaiting_recompute",
                                  "Cases whose changed facts no recompute has handled yet (dirty marks).")
        dirty.add_metric([], figures.dirty_cases)
        yield dirty
        last = GaugeMetricFamily("watchdog_last_poll_ok_timestamp_seconds",
                                 "Each replica's last successful poll round (Unix time).", labels=["replica"])
        for replica, ts in figures.replicas:
            if ts is not None:
                last.add_metric([replica], ts)
        yield last
        yield from _source_metrics(figures)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _source_metrics(figures: DbFigures) -> Iterator[Metric]:
    """Each source's pipe (``watchdog.intake.sources``): last successful read, rows, batches."""
    last = GaugeMetricFamily("watchdog_source_last_ok_timestamp_seconds",
                             "Each source's last successful read (Unix time).", labels=["source"])
    rows = CounterMetricFamily("watchdog_source_rows_read", "Rows read from each source.", labels=["source"])
    batches = CounterMetricFamily("watchdog_source_batches", "Batches from each source, imported or refused.",
                                  labels=["source", "result"])
    for name, ts, n, ok, refused in figures.sources:
        if ts is not None:
            last.add_metric([name], ts)
        rows.add_metric([name], n)
        batches.add_metric([name, "imported"], ok)
        batches.add_metric([name, "refused"], refused)
    yield from (last, rows, batches)


class _Combined:
    """The in-process registry and a database collector, exposed as one registry."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(db_collector: DatabaseCollector | None) -> bytes:
    """The text of ``/metrics``."""
    parts = [REGISTRY] + ([db_collector] if db_collector is not None else [])
    return generate_latest(_Combined(*parts))
