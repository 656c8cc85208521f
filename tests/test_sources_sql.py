"""A SQL source: the case system's reporting database (MariaDB, and the same on PostgreSQL),
read on a schedule, mapped by configuration, imported all or nothing, incrementally and nightly."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from conftest import at
from sources_helpers import CPR, MAPPING, ext_ids, ops_alerts, store_contains
from sources_vendor import NIGHT, mariadb_vendor, postgres_vendor
from watchdog.casestore import Case, Measure, MeasureKind, Notification, Worker, WorkerRole
from watchdog.deadlines import Deadline
from watchdog.intake.sources.sql_source import read_sql_source, vendor_engine
from watchdog.intake.sources.state import SourceState, claim_source
from watchdog.scheduler import Daemon
from watchdog.settings import load_settings

T0 = at("2026-12-01 02:30")


@pytest.fixture(params=["mariadb", "postgresql"])
def vendor(request):
    made = mariadb_vendor() if request.param == "mariadb" else postgres_vendor()
    made.seed()
    yield made
    made.close()


def settings_for(vendor, **source):
    cfg = {"name": "sagsflow", "url": vendor.url, "mapping": str(MAPPING)} | source
    return load_settings(None, intake={"sql_sources": [cfg]},
                         delivery={"ops_urls": ["mailto://drift@kommune.example.dk"]})


def state_of(engine) -> SourceState:
    with Session(engine) as session:
        return session.get(SourceState, "sagsflow")


def test_a_reporting_schema_is_picked_up_by_the_scheduler_mapped_and_the_deadlines_follow_at_the_next_poll(
        engine, vendor):
    settings = settings_for(vendor)
    clock = iter([T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1)])
    daemon = Daemon(engine, settings, transport=None, replica="r1", clock=lambda: next(clock))
    assert daemon.scheduler.get_job("source:sagsflow") is not None  # a job beside the poll

    daemon.sql_source_job(settings.intake.sql_sources[0])  # what the scheduler runs, no command

    assert ext_ids(engine, Case) == ["SF-1001", "SF-1002"]
    with Session(engine) as session:
        roles = {w.ext_id: w.role for w in session.exec(select(Worker))}
        measure = session.exec(select(Measure)).one()
        case = session.exec(select(Case).where(Case.ext_id == "SF-1001")).one()
        note = session.exec(select(Notification).where(Notification.ext_id == "U-502")).one()
    assert roles == {"M-1": WorkerRole.LEADER, "M-2": WorkerRole.CASEWORKER}  # values mapped
    assert measure.kind == MeasureKind.PLACEMENT_CONSENT
    assert case.opened_at == at("2026-11-23 09:15")  # a date and a time column → one instant
    assert note.received_at == at("2026-11-30 22:10")
    assert store_contains(engine, CPR) == [] and store_contains(engine, "Hemmeligsen") == []
    row = state_of(engine)
    assert row.rows_read == 8 and row.batches_ok == 1 and row.last_full_at is not None

    daemon.poll_job()
    with Session(engine) as session:
        assert session.exec(select(Deadline).where(Deadline.duty == "assessment_24h")).all()


def test_a_row_committed_late_is_read_within_the_overlap_and_an_older_one_by_the_nightly_full_read(
        engine, vendor):
    settings = settings_for(vendor, overlap_seconds=900)
    cfg = settings.intake.sql_sources[0]
    assert read_sql_source(engine, settings, cfg, now=T0, replica="r1").full

    # A transaction that began before the last read commits afterwards: its change time is older
    # than the newest row already read, but within the overlap window.
    vendor.insert("sag", sagsnr="SF-1003", enhed_id="E-NORD", oprettet_dato=datetime(2026, 11, 30).date(),
                  rettet=NIGHT - timedelta(minutes=5))
    # One older than the overlap: only the nightly full re-read can find it.
    vendor.insert("sag", sagsnr="SF-0999", enhed_id="E-NORD", oprettet_dato=datetime(2026, 11, 1).date(),
                  rettet=NIGHT - timedelta(hours=3))
    vendor.update("underretning", "underretning_id", "U-502", vurderet=datetime(2026, 12, 1, 8, 0),
                  vurderet_af="M-2", rettet=NIGHT + timedelta(hours=7))

    run = read_sql_source(engine, settings, cfg, now=T0 + timedelta(hours=6), replica="r1")
    assert run.outcome == "imported" and not run.full
    assert ext_ids(engine, Case) == ["SF-1001", "SF-1002", "SF-1003"]
    with Session(engine) as session:
        assert session.exec(select(Notification).where(Notification.ext_id == "U-502")).one().assessed_at
    marks = json.loads(state_of(engine).watermarks)
    assert marks["notifications"]["value"].startswith("2026-12-01T08:00")

    later = read_sql_source(engine, settings, cfg, now=T0 + timedelta(hours=12), replica="r1")
    assert not later.full and "SF-0999" not in ext_ids(engine, Case)
    nightly = read_sql_source(engine, settings, cfg, now=at("2026-12-02 02:05"), replica="r1")
    assert nightly.full and nightly.outcome == "imported"
    assert "SF-0999" in ext_ids(engine, Case)


def test_a_refused_batch_keeps_the_watermark_and_raises_one_ops_alert(engine, vendor):
    settings = settings_for(vendor)
    cfg = settings.intake.sql_sources[0]
    read_sql_source(engine, settings, cfg, now=T0, replica="r1")
    marks = state_of(engine).watermarks
    vendor.update("underretning", "underretning_id", "U-502", vurderet=datetime(2026, 12, 1, 8, 0),
                  vurderet_af="M-999", rettet=NIGHT + timedelta(hours=7))
    vendor.update("sag", "sagsnr", "SF-1001", lukket=datetime(2026, 12, 1, 8, 30), rettet=NIGHT + timedelta(hours=7))

    refused = read_sql_source(engine, settings, cfg, now=T0 + timedelta(hours=6), replica="r1")

    assert refused.outcome == "refused"
    assert [(p.field, p.record) for p in refused.problems] == [("assessed_by", "2 (underretning_id U-502)")]
    assert "unknown worker 'M-999'" in refused.problems[0].reason
    assert state_of(engine).watermarks == marks  # not moved: the next round reads the same rows
    with Session(engine) as session:
        assert session.exec(select(Case).where(Case.ext_id == "SF-1001")).one().closed_at is None  # nothing stored
    assert len(ops_alerts(engine)) == 1

    again = read_sql_source(engine, settings, cfg, now=T0 + timedelta(hours=6, minutes=5), replica="r1")
    assert again.outcome == "refused" and len(ops_alerts(engine)) == 1  # one alert per refusal streak
    assert state_of(engine).batches_refused == 2

    vendor.update("underretning", "underretning_id", "U-502", vurderet_af="M-2", rettet=NIGHT + timedelta(hours=8))
    fixed = read_sql_source(engine, settings, cfg, now=T0 + timedelta(hours=7), replica="r1")
    assert fixed.outcome == "imported"
    assert state_of(engine).watermarks != marks and state_of(engine).refused_since is None
    with Session(engine) as session:
        assert session.exec(select(Case).where(Case.ext_id == "SF-1001")).one().closed_at is not None


def test_a_dropped_column_is_never_selected_from_the_source(engine, vendor):
    settings = settings_for(vendor)
    cfg = settings.intake.sql_sources[0]
    statements: list[str] = []
    event.listen(vendor_engine(cfg), "before_cursor_execute",
                 lambda conn, cursor, stmt, *args: statements.append(stmt))

    read_sql_source(engine, settings, cfg, now=T0, replica="r1")

    reads = [s for s in statements if "rpt_sag" in s and "1 = 0" not in s]
    assert reads, statements
    assert all("cpr_nr" not in s and "barnets_navn" not in s for s in reads)
    # The only statement that names the view's every column reads no row at all.
    assert all("*" not in s for s in reads)


def test_a_second_replica_skips_a_source_another_replica_is_reading(engine, vendor):
    settings = settings_for(vendor)
    cfg = settings.intake.sql_sources[0]
    read_sql_source(engine, settings, cfg, now=T0, replica="r1")
    with Session(engine) as session:
        assert claim_source(session, "sagsflow", replica="r1", now=T0 + timedelta(minutes=5), seconds=600)

    run = read_sql_source(engine, settings, cfg, now=T0 + timedelta(minutes=6), replica="r2")

    assert run.outcome == "busy"
    assert state_of(engine).batches_ok == 1


def test_an_unreachable_source_is_recorded_without_an_ops_alert_until_it_is_silent_too_long(engine, tmp_path):
    from watchdog.intake.sources.runner import read_all_sources

    settings = load_settings(None, intake={"source_max_age_hours": 26, "sql_sources": [
        {"name": "sagsflow", "url": "mysql+pymysql://reader@127.0.0.1:1/none", "mapping": str(MAPPING)}]},
        delivery={"ops_urls": ["mailto://drift@kommune.example.dk"]})

    rounds = read_all_sources(engine, settings, now=T0, replica="r1")

    assert [(r.source, r.ok) for r in rounds] == [("sagsflow", False)]
    assert "cannot read" in state_of(engine).last_error
    assert ops_alerts(engine) == []
    read_all_sources(engine, settings, now=T0 + timedelta(hours=27), replica="r1")
    read_all_sources(engine, settings, now=T0 + timedelta(hours=28), replica="r1")
    alerts = ops_alerts(engine)
    assert len(alerts) == 1 and "tavs" in json.loads(alerts[0].payload)["subject"]
