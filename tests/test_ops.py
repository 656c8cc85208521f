"""Operations: readiness from the heartbeat table, Prometheus metrics, the health server, the heartbeat URL."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text
from sqlmodel import Session

from watchdog.casestore import Case, Team
from watchdog.db import make_engine
from watchdog.deadlines import Deadline
from watchdog.ops import metrics
from watchdog.ops.health import check_ready, start_health_server
from watchdog.ops.heartbeat import (
    ServiceHeartbeat,
    call_heartbeat_url,
    last_successful_poll,
    record_round,
    round_finished,
)
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, DeliveryAttempt
from watchdog.rules.types import Duty, Regime, Status, SubjectKind
from watchdog.settings import load_settings

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray config/watchdog.toml or .env
    return load_settings(http={"ready_max_poll_age_seconds": 600, "health_port": 0})


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def seed_outbox(session: Session) -> None:
    """Two deadlines and four alerts in known states (one pending since 10 minutes before NOW)."""
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    case = Case(ext_id="S-1", team_id=team.id, opened_at=NOW, facts_changed_at=NOW)
    session.add(case)
    session.flush()
    deadlines = []
    for i, (duty, status) in enumerate([(Duty.INVESTIGATION_4M, Status.OPEN), (Duty.ASSESSMENT_24H, Status.BREACHED)]):
        d = Deadline(key=f"k{i}", duty=duty, case_id=case.id, subject_kind=SubjectKind.CASE, subject_id=case.id,
                     regime=Regime.BL, citation="BL § 1", clock_start=NOW - timedelta(days=1), due=NOW,
                     status=status, computed_at=NOW, status_changed_at=NOW)
        session.add(d)
        deadlines.append(d)
    session.flush()
    for i, (state, send_after) in enumerate([
        (AlertState.PENDING, NOW - timedelta(minutes=10)),
        (AlertState.PENDING, NOW + timedelta(days=1)),  # not due yet: not "unsent" for the age gauge
        (AlertState.SENT, NOW - timedelta(hours=2)),
        (AlertState.DEAD, NOW - timedelta(hours=3)),
    ]):
        alert = Alert(key=f"a{i}", kind=AlertKind.WARNING, stage="before_7d", deadline_id=deadlines[0].id,
                      recipient_address="cw@kommune.example.dk", channel=Channel.EMAIL, send_after=send_after,
                      state=state, next_attempt_at=send_after, created_at=NOW - timedelta(days=2))
        session.add(alert)
        session.flush()
        if state is AlertState.DEAD:
            session.add(DeliveryAttempt(alert_id=alert.id, at=NOW, worker="w", ok=False, detail="550"))
    session.commit()


# --- heartbeat table and readiness -------------------------------------------------------------

def test_a_round_upserts_one_row_per_replica_and_counts_its_rounds(engine, session):
    record_round(session, replica="a", ok=True, now=NOW, duration_s=1.5)
    record_round(session, replica="a", ok=False, now=NOW + timedelta(minutes=5), error="db gone")
    record_round(session, replica="b", ok=True, now=NOW + timedelta(minutes=1))
    session.commit()
    a = session.get(ServiceHeartbeat, "a")
    assert (a.rounds_ok, a.rounds_failed, a.last_error) == (1, 1, "db gone")
    assert a.last_poll_ok_at == NOW and a.last_round_at == NOW + timedelta(minutes=5)
    assert last_successful_poll(session, replica="a") == NOW
    assert last_successful_poll(session) == NOW + timedelta(minutes=1)


def test_a_replica_silent_for_a_week_is_pruned_by_the_next_round_of_another(engine, session):
    record_round(session, replica="old-pod", ok=True, now=NOW - timedelta(days=8))
    record_round(session, replica="new-pod", ok=True, now=NOW)
    session.commit()
    assert session.get(ServiceHeartbeat, "old-pod") is None
    assert session.get(ServiceHeartbeat, "new-pod") is not None


def test_not_ready_before_any_successful_poll(engine, settings):
    result = check_ready(engine, settings, now=NOW)
    assert not result.ready and result.database == "ok"
    assert "no successful poll yet" in result.reason


def test_ready_with_a_recent_poll_and_not_ready_once_it_is_older_than_the_limit(engine, session, settings):
    record_round(session, replica="a", ok=True, now=NOW)
    session.commit()
    assert check_ready(engine, settings, now=NOW + timedelta(seconds=600)).ready
    late = check_ready(engine, settings, now=NOW + timedelta(seconds=601))
    assert not late.ready and "601s ago (limit 600s)" in late.reason


def test_readiness_of_one_replica_ignores_the_polls_of_the_others(engine, session, settings):
    record_round(session, replica="a", ok=True, now=NOW - timedelta(hours=1))
    record_round(session, replica="b", ok=True, now=NOW)
    session.commit()
    assert check_ready(engine, settings, now=NOW).ready
    assert not check_ready(engine, settings, now=NOW, replica="a").ready
    assert check_ready(engine, settings, now=NOW, replica="b").ready


def test_not_ready_when_the_database_is_unreachable(settings):
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    result = check_ready(dead, settings, now=NOW)
    dead.dispose()
    assert not result.ready and result.reason.startswith("database unreachable")


# --- metrics -----------------------------------------------------------------------------------

def test_database_figures_count_deadlines_alerts_and_the_oldest_unsent_alert(engine, session):
    seed_outbox(session)
    record_round(session, replica="a", ok=True, now=NOW)
    session.commit()
    figures = metrics.read_db_figures(session, now=NOW)
    assert sorted(figures.deadlines) == [("assessment_24h", "breached", 1), ("investigation_4m", "open", 1)]
    assert sorted(figures.alerts) == [("dead", "email", 1), ("pending", "email", 2), ("sent", "email", 1)]
    assert figures.failed_attempts == 1
    assert figures.oldest_unsent_age_s == 600.0
    assert figures.replicas == [("a", NOW.timestamp())]


def test_the_scrape_serves_stale_figures_marked_down_when_the_database_is_too_slow(engine, session):
    seed_outbox(session)
    slow = threading.Event()

    def clock():
        if slow.is_set():  # the query calls the clock: this stands in for a database that hangs
            time.sleep(2)
        return NOW

    collector = metrics.DatabaseCollector(engine, clock=clock, cache_seconds=0, time_limit_seconds=0.3)
    try:
        first = metrics.exposition(collector).decode()
        assert "watchdog_db_up 1.0" in first
        slow.set()
        started = time.monotonic()
        second = metrics.exposition(collector).decode()
        assert time.monotonic() - started < 1.5
        assert "watchdog_db_up 0.0" in second
        assert 'watchdog_alerts{channel="email",state="pending"} 2.0' in second  # the last good figures
    finally:
        collector.close()


def test_the_scrape_does_not_hang_on_a_locked_postgres_table(engine, session, on_postgres):
    if not on_postgres:
        pytest.skip("row locks that block readers exist on PostgreSQL only")
    seed_outbox(session)
    collector = metrics.DatabaseCollector(engine, clock=lambda: NOW, cache_seconds=0, time_limit_seconds=0.5)
    with engine.connect() as locker:
        locker.execute(text("LOCK TABLE alert IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        body = metrics.exposition(collector).decode()
        assert time.monotonic() - started < 2
        assert "watchdog_db_up 0.0" in body
        locker.rollback()
    collector.close()


def test_poll_and_delivery_counters_count_what_this_process_did():
    before = metrics.REGISTRY.get_sample_value("watchdog_polls_total", {"result": "ok"})
    metrics.record_poll(0.2, True, NOW)
    metrics.record_poll(0.1, False, NOW)
    metrics.record_delivery("email", "sent", 3)
    assert metrics.REGISTRY.get_sample_value("watchdog_polls_total", {"result": "ok"}) == before + 1
    assert metrics.REGISTRY.get_sample_value("watchdog_process_last_poll_ok_timestamp_seconds") == NOW.timestamp()
    assert metrics.REGISTRY.get_sample_value("watchdog_deliveries_total",
                                             {"channel": "email", "result": "sent"}) >= 3
    with pytest.raises(ValueError, match="unknown delivery result 'lost'"):
        metrics.record_delivery("email", "lost")


# --- the health server over real HTTP ------------------------------------------------------------

def test_health_server_answers_alive_not_ready_then_ready_after_a_round(engine, session, settings):
    seed_outbox(session)
    clock_now = [NOW]
    server = start_health_server(settings, engine, replica="pod-1", port=0, clock=lambda: clock_now[0])
    try:
        assert get(server.url + "/healthz")[0] == 200
        status, ctype, body = get(server.url + "/readyz")
        assert status == 503 and json.loads(body)["reason"] == "no successful poll yet by replica pod-1"
        round_finished(engine, settings, replica="pod-1", ok=True, now=NOW, duration_s=0.4)
        status, _, body = get(server.url + "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        clock_now[0] = NOW + timedelta(seconds=601)
        assert get(server.url + "/readyz")[0] == 503
        status, ctype, body = get(server.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        samples = scrape(body)
        assert samples[("watchdog_deadlines", (("duty", "assessment_24h"), ("status", "breached")))] == 1
        assert samples[("watchdog_alerts", (("channel", "email"), ("state", "dead")))] == 1
        assert samples[("watchdog_oldest_unsent_alert_age_seconds", ())] == 1201
        assert samples[("watchdog_last_poll_ok_timestamp_seconds", (("replica", "pod-1"),))] == NOW.timestamp()
        assert samples[("watchdog_poll_duration_seconds_count", ())] >= 1
        assert samples[("watchdog_db_up", ())] == 1
        assert get(server.url + "/nothing")[0] == 404
        url = server.url
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):  # stop() frees the port
        urllib.request.urlopen(url + "/healthz", timeout=2)


def scrape(body: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_health_port_zero_in_the_settings_means_no_server(engine, settings):
    handle = start_health_server(settings, engine)
    assert handle.url is None
    handle.stop()


def test_the_fastapi_app_gets_the_same_routes(engine, session, settings):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from watchdog.ops.health import mount

    app = FastAPI()
    endpoints = mount(app, settings, engine, clock=lambda: NOW)
    try:
        client = TestClient(app)
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        record_round(session, replica="run-1", ok=True, now=NOW)
        session.commit()
        assert client.get("/readyz").json()["ready"] is True
        assert "watchdog_db_up 1.0" in client.get("/metrics").text
    finally:
        endpoints.close()


# --- the heartbeat URL ---------------------------------------------------------------------------

class _Monitor:
    """A real HTTP server standing in for an outside monitor (healthchecks.io and the like)."""

    def __init__(self, status: int = 200):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc123"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_heartbeat_url_is_called_after_a_successful_round_only(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monitor = _Monitor()
    try:
        settings = load_settings(http={"heartbeat_url": monitor.url})
        round_finished(engine, settings, replica="r", ok=True, now=NOW, duration_s=0.1)
        round_finished(engine, settings, replica="r", ok=False, now=NOW + timedelta(minutes=5), error="boom")
        assert monitor.hits == ["/ping/abc123"]
    finally:
        monitor.close()


def test_a_failing_heartbeat_is_logged_and_never_stops_the_round(engine, session, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monitor = _Monitor(status=500)
    try:
        assert call_heartbeat_url(monitor.url) is False
        settings = load_settings(http={"heartbeat_url": "http://user:pw-secret-1@127.0.0.1:1/ping"})
        round_finished(engine, settings, replica="r", ok=True, now=NOW)
    finally:
        monitor.close()
    assert session.get(ServiceHeartbeat, "r").rounds_ok == 1
    assert "heartbeat http://user:********@127.0.0.1:1/ping failed" in caplog.text
    assert "pw-secret-1" not in caplog.text
