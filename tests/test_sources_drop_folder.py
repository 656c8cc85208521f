"""The drop folder: a nightly export left on a share is imported by itself, all or nothing, once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from sqlmodel import Session, select

from conftest import at
from sources_helpers import CHILD, CPR, drop_export, ext_ids, ops_alerts, source_settings, store_contains
from watchdog import service
from watchdog.casestore import Case, Notification
from watchdog.deadlines import Deadline
from watchdog.intake.sources.drop_folder import poll_drop_folder
from watchdog.intake.sources.state import SourceBatch, SourceState

T0 = at("2026-12-01 02:00")


def outcomes(reports):
    return sorted((r.name, r.outcome) for r in reports)


def test_a_nightly_export_is_imported_once_its_files_stop_changing_and_deadlines_follow_at_the_next_poll(
        engine, tmp_path):
    drop = tmp_path / "drop"
    drop_export(drop)
    settings = source_settings(tmp_path, drop_folder=str(drop))

    first = poll_drop_folder(engine, settings, now=T0, replica="r1")
    assert outcomes(first) == [(".", "waiting")]  # seen once: maybe still being copied
    assert ext_ids(engine, Case) == []

    second = poll_drop_folder(engine, settings, now=T0 + timedelta(seconds=60), replica="r1")
    assert outcomes(second) == [(".", "imported")]
    assert ext_ids(engine, Case) == ["SF-1001", "SF-1002"]
    assert ext_ids(engine, Notification) == ["U-501", "U-502"]
    # The CPR number and the child's name were in dropped columns: never stored.
    assert store_contains(engine, CPR) == [] and store_contains(engine, CHILD) == []

    moved = second[0].moved_to
    assert moved.parent == drop / "processed"
    receipt = json.loads((moved / "receipt.json").read_text(encoding="utf-8"))
    assert receipt["counts"]["cases"]["created"] == 2 and receipt["records"] == 9
    assert sorted(p.name for p in drop.iterdir()) == ["processed"]

    report = service.poll(engine, settings, now=T0 + timedelta(minutes=5), replica="r1")
    with Session(engine) as session:
        duties = {d.duty for d in session.exec(select(Deadline))}
    assert "assessment_24h" in {getattr(d, "value", d) for d in duties}
    assert report.ok and report.enqueued >= 1  # the alerts of the new deadlines are planned


def test_a_marker_file_completes_a_file_at_once(engine, tmp_path):
    drop = tmp_path / "drop"
    batch = drop_export(drop, sub="2026-12-01")
    for path in list(batch.glob("*.csv")):
        (batch / (path.name + ".done")).write_text("", encoding="utf-8")
    settings = source_settings(tmp_path, drop_folder=str(drop))

    reports = poll_drop_folder(engine, settings, now=T0, replica="r1")

    assert outcomes(reports) == [("2026-12-01", "imported")]
    assert not batch.exists()  # the emptied subfolder is removed
    assert "underretninger.csv.done" in {p.name for p in reports[0].moved_to.iterdir()}


def test_a_file_still_growing_holds_back_its_whole_batch(engine, tmp_path):
    drop = tmp_path / "drop"
    drop_export(drop)
    cases = drop / "sager.csv"
    full = cases.read_bytes()
    cases.write_bytes(full[: len(full) // 2])
    settings = source_settings(tmp_path, drop_folder=str(drop))

    assert outcomes(poll_drop_folder(engine, settings, now=T0, replica="r1")) == [(".", "waiting")]
    cases.write_bytes(full)  # the copy went on
    assert outcomes(poll_drop_folder(engine, settings, now=T0 + timedelta(seconds=60), replica="r1")) == [
        (".", "waiting")]
    assert ext_ids(engine, Case) == []
    assert outcomes(poll_drop_folder(engine, settings, now=T0 + timedelta(seconds=120), replica="r1")) == [
        (".", "imported")]


def test_a_bad_batch_lands_in_failed_with_a_report_and_one_ops_alert_and_nothing_is_stored(engine, tmp_path):
    drop = tmp_path / "drop"
    drop_export(drop)
    notes = drop / "underretninger.csv"
    notes.write_text(notes.read_text(encoding="utf-8-sig").replace("30-11-2026;22:10", "31-11-2026;22:10"),
                     encoding="utf-8-sig")
    settings = source_settings(tmp_path, drop_folder=str(drop))
    marker_all = drop / "READY.done"
    marker_all.write_text("", encoding="utf-8")

    reports = poll_drop_folder(engine, settings, now=T0, replica="r1")

    assert outcomes(reports) == [(".", "failed")]
    assert ext_ids(engine, Case) == []  # all or nothing: the good files were not stored either
    report = (reports[0].moved_to / "report.txt").read_text(encoding="utf-8")
    assert reports[0].moved_to.parent == drop / "failed"
    assert "underretninger.csv, record 3, field 'received_at'" in report
    alerts = ops_alerts(engine)
    assert len(alerts) == 1 and "afvist" in json.loads(alerts[0].payload)["subject"]
    with Session(engine) as session:
        row = session.get(SourceState, "drop-folder")
        assert row.batches_refused == 1 and row.batches_ok == 0 and "received_at" in row.last_error

    # The same bad files dropped again: refused again, still one ops alert.
    for path in reports[0].moved_to.iterdir():
        if path.name != "report.txt":
            path.rename(drop / path.name)
    again = poll_drop_folder(engine, settings, now=T0 + timedelta(minutes=1), replica="r1")
    assert outcomes(again) == [(".", "failed")]
    assert len(ops_alerts(engine)) == 1


def test_the_same_content_dropped_twice_changes_nothing(engine, tmp_path):
    drop = tmp_path / "drop"
    settings = source_settings(tmp_path, drop_folder=str(drop))
    drop_export(drop, sub="night1")
    (drop / "night1" / "READY.done").write_text("", encoding="utf-8")
    assert outcomes(poll_drop_folder(engine, settings, now=T0, replica="r1")) == [("night1", "imported")]
    with Session(engine) as session:
        before = {c.ext_id: c.facts_changed_at for c in session.exec(select(Case))}

    drop_export(drop, sub="night2")
    (drop / "night2" / "READY.done").write_text("", encoding="utf-8")
    reports = poll_drop_folder(engine, settings, now=T0 + timedelta(days=1), replica="r1")

    assert outcomes(reports) == [("night2", "duplicate")]
    assert reports[0].moved_to.parent == drop / "processed"
    with Session(engine) as session:
        assert {c.ext_id: c.facts_changed_at for c in session.exec(select(Case))} == before
        assert len(session.exec(select(SourceBatch)).all()) == 1


def test_two_replicas_never_import_the_same_batch_twice(engine, engine_factory, tmp_path):
    drop = tmp_path / "drop"
    drop_export(drop)
    (drop / "READY.done").write_text("", encoding="utf-8")
    settings = source_settings(tmp_path, drop_folder=str(drop))
    engines = [engine, engine_factory()]
    results: dict[str, list] = {}
    start = threading.Barrier(2)

    def replica(name, eng):
        start.wait()
        results[name] = poll_drop_folder(eng, settings, now=T0, replica=name)

    threads = [threading.Thread(target=replica, args=(f"r{i}", e)) for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    imported = [r for reports in results.values() for r in reports if r.outcome == "imported"]
    assert len(imported) == 1
    others = [r.outcome for reports in results.values() for r in reports if r.outcome != "imported"]
    assert set(others) <= {"busy", "duplicate", "gone"}
    assert len(list((drop / "processed").iterdir())) == 1
    with Session(engine) as session:
        assert session.get(SourceState, "drop-folder").batches_ok == 1
