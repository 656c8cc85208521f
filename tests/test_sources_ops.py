"""The sources, visible and scheduled: health, /readyz, metrics, `watchdog sources`, silence,
`watchdog tick` reading them before its poll, and a slow source never delaying the poll."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

from sqlmodel import Session, select
from typer.testing import CliRunner

from conftest import at
from sources_helpers import MAPPING, drop_export, ext_ids, ops_alerts, source_settings
from watchdog.casestore import Case
from watchdog.cli import app
from watchdog.deadlines import Deadline
from watchdog.intake.sources.drop_folder import poll_drop_folder
from watchdog.intake.sources.watch import check_source_silence
from watchdog.ops.health import HealthEndpoints, check_ready
from watchdog.ops.heartbeat import ServiceHeartbeat
from watchdog.scheduler import Daemon

T0 = at("2026-12-01 02:00")


def imported(engine, tmp_path):
    drop = tmp_path / "drop"
    drop_export(drop)
    (drop / "READY.done").write_text("", encoding="utf-8")
    settings = source_settings(tmp_path, drop_folder=str(drop))
    poll_drop_folder(engine, settings, now=T0, replica="r1")
    return settings


def test_readyz_and_the_metrics_show_each_sources_last_read_rows_and_refused_batches(engine, tmp_path):
    settings = imported(engine, tmp_path)

    ready = check_ready(engine, settings, now=T0 + timedelta(minutes=1))
    [source] = ready.sources
    assert source["name"] == "drop-folder" and source["rows_read"] == 9 and source["batches_refused"] == 0
    assert source["last_ok_at"].startswith("2026-12-01T01:00") and not source["silent"]

    endpoints = HealthEndpoints(settings, engine, clock=lambda: T0 + timedelta(minutes=1))
    try:
        status, _ctype, body = endpoints.readyz()
        assert json.loads(body)["sources"][0]["batches_ok"] == 1
        _status, _ctype, metrics = endpoints.metrics()
    finally:
        endpoints.close()
    text = metrics.decode()
    assert 'watchdog_source_rows_read_total{source="drop-folder"} 9.0' in text
    assert 'watchdog_source_batches_total{result="refused",source="drop-folder"} 0.0' in text
    assert 'watchdog_source_last_ok_timestamp_seconds{source="drop-folder"}' in text


def test_watchdog_sources_and_health_list_each_source_with_its_state(engine, database_url, tmp_path):
    imported(engine, tmp_path)
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[intake]\ndrop_folder = "{tmp_path / "drop"}"\ndrop_mapping = "{MAPPING}"\n',
                      encoding="utf-8")
    base = ["--config", str(config), "--database-url", database_url]

    listed = CliRunner().invoke(app, [*base, "sources", "--json"])
    assert listed.exit_code == 0, listed.output
    [info] = json.loads(listed.output)
    assert info["kind"] == "drop_folder" and info["rows_read"] == 9 and info["mapping"] == str(MAPPING)
    table = CliRunner().invoke(app, [*base, "sources"], env={"COLUMNS": "200"})
    assert "drop-folder" in table.output
    health = CliRunner().invoke(app, [*base, "health"])
    assert "source drop-folder: last successful read 2026-12-01T01:00:00+00:00, 9 rows read, 1 batches imported" \
        in health.output


def test_a_source_silent_longer_than_its_maximum_age_raises_one_ops_alert(engine, tmp_path):
    settings = imported(engine, tmp_path)
    with Session(engine) as session:
        assert check_source_silence(session, settings, now=T0 + timedelta(hours=25)) == 0
        assert check_source_silence(session, settings, now=T0 + timedelta(hours=27)) == 1
        assert check_source_silence(session, settings, now=T0 + timedelta(hours=30)) == 0
        session.commit()
    [alert] = ops_alerts(engine)
    assert "drop-folder" in json.loads(alert.payload)["subject"]


def test_tick_reads_every_source_before_its_poll_so_cron_setups_get_the_export(
        engine, database_url, tmp_path, smtp_server):
    drop = tmp_path / "drop"
    drop_export(drop)
    (drop / "READY.done").write_text("", encoding="utf-8")
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[intake]\ndrop_folder = "{drop}"\ndrop_mapping = "{MAPPING}"\n'
                      f'[smtp]\nport = {smtp_server.port}\n', encoding="utf-8")

    result = CliRunner().invoke(app, ["--config", str(config), "--database-url", database_url, "tick"])

    assert result.exit_code == 0, result.output
    assert "source drop-folder: 1 imported\n" in result.output
    assert ext_ids(engine, Case) == ["SF-1001", "SF-1002"]
    with Session(engine) as session:
        assert session.exec(select(Deadline)).first() is not None
    assert smtp_server.messages  # the alerts of the new deadlines go out in the same tick


def test_a_slow_source_never_delays_the_deadline_poll(engine, tmp_path, monkeypatch):
    from watchdog.intake.sources import runner

    settings = source_settings(tmp_path, drop_folder=str(tmp_path))
    release, entered = threading.Event(), threading.Event()

    def stuck(*args, **kwargs):
        entered.set()
        release.wait(30)
        return []

    monkeypatch.setattr(runner, "poll_drop_folder", stuck)
    daemon = Daemon(engine, settings, transport=None, replica="slow-source")
    daemon.scheduler.remove_job("deliver")
    thread = threading.Thread(target=daemon.scheduler.start, daemon=True)
    thread.start()
    try:
        assert entered.wait(20), "the drop folder job did not start"
        deadline = time.monotonic() + 20
        polled = None
        while time.monotonic() < deadline and polled is None:
            with Session(engine) as session:
                polled = session.get(ServiceHeartbeat, "slow-source")
            time.sleep(0.1)
        assert polled is not None and polled.last_poll_ok_at is not None  # polled while the source hung
        assert not release.is_set()
    finally:
        release.set()
        daemon.stop.set()
        daemon.scheduler.shutdown(wait=True)
        thread.join(timeout=10)
