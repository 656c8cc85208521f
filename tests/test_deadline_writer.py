"""The recompute's bulk writes (``watchdog.deadline_writer``) store exactly what the Core statements
store: a first computation and a rule change written the bulk way (SQLite executemany, PostgreSQL
COPY) leave the same deadline rows and outcome events, value for value as the database holds them.
Real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from conftest import at
from watchdog import deadline_writer
from watchdog.casestore import Case, Notification, Team, Worker
from watchdog.deadline_marks import count_dirty
from watchdog.deadlines import Deadline
from watchdog.recompute import poll_deadlines, refresh_deadlines
from watchdog.settings import load_settings

SETTINGS = load_settings()
NOW = at("2026-03-02 09:00")


@pytest.fixture
def municipality(session):
    from watchdog.demo_data import Scale, generate, populate

    populate(session, generate(5, NOW, Scale(cases=120, caseworkers=6, teams=2)))
    session.commit()


def stored(session) -> tuple[dict, list]:
    """The deadline rows by key and the outcome events (their deadline by key), as stored: read
    through ``text()``, so no column type converts anything. Ids are left out: a rolled-back run
    on PostgreSQL still used up its sequence numbers."""
    deadlines = {}
    for row in session.execute(text("SELECT * FROM deadline")).mappings():
        deadlines[row["key"]] = {name: value for name, value in row.items() if name != "id"}
    events = sorted(
        tuple(row) for row in session.execute(text(
            "SELECT d.key, e.occurred_at, e.recorded_at, e.kind, e.deadline_key, e.case_id, e.duty, "
            "e.from_status, e.to_status, e.detail FROM outcome_event e JOIN deadline d ON d.id = e.deadline_id")))
    return deadlines, events


def both_ways(session, monkeypatch, work) -> tuple:
    """``work(session)`` run the ordinary way and the bulk way, each rolled back: (stats, stored) of each."""
    out = []
    for bulk_from in (10**9, 1):
        monkeypatch.setattr(deadline_writer, "BULK_ROWS", bulk_from)
        stats = work(session)
        session.flush()
        out.append((stats, stored(session), count_dirty(session)))
        session.rollback()
    return out


def test_a_first_computation_written_the_bulk_way_stores_what_the_ordinary_way_stores(session, municipality,
                                                                                        monkeypatch):
    (ordinary, ordinary_rows, ordinary_dirty), (bulk, bulk_rows, bulk_dirty) = both_ways(
        session, monkeypatch, lambda s: poll_deadlines(s, now=NOW, settings=SETTINGS))
    deadlines, events = ordinary_rows
    assert len(deadlines) > 300 and len(events) > len(deadlines)  # enough to mean something
    assert ordinary.deadlines_written == len(deadlines) and ordinary.status_changes == len(events)
    assert bulk == ordinary
    assert bulk_rows[0] == deadlines  # every column of every row, as stored
    assert bulk_rows[1] == events
    assert ordinary_dirty == bulk_dirty == 0  # every dirty mark cleared either way


def test_a_rule_change_written_the_bulk_way_stores_what_the_ordinary_way_stores(session, municipality,
                                                                                 monkeypatch):
    from watchdog.rules import citations

    poll_deadlines(session, now=NOW, settings=SETTINGS)
    session.commit()
    for key, cited in list(citations.CITATIONS.items()):
        monkeypatch.setitem(citations.CITATIONS, key, citations.Citation(f"{cited.text} (rettet)", cited.confidence))
    later = at("2026-03-02 10:00")
    (ordinary, ordinary_rows, _), (bulk, bulk_rows, _) = both_ways(
        session, monkeypatch, lambda s: refresh_deadlines(s, now=later, settings=SETTINGS))
    assert ordinary.deadlines_written == len(ordinary_rows[0]) > 300  # every row rewritten
    assert bulk == ordinary and bulk_rows == ordinary_rows
    assert all(row["citation"].endswith("(rettet)") for row in bulk_rows[0].values())


def test_the_bulk_insert_skips_a_key_already_stored_and_says_which_rows_it_inserted(session, monkeypatch):
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    worker = Worker(ext_id="W1", name="Worker 1", email="w1@x.dk", team_id=team.id)
    session.add(worker)
    session.flush()
    cases = [Case(ext_id=f"S-{i}", team_id=team.id, worker_id=worker.id, opened_at=at("2024-01-02 09:00"),
                  facts_changed_at=at("2024-03-01 09:00")) for i in range(3)]
    session.add_all(cases)
    session.flush()
    for case in cases:
        session.add(Notification(ext_id=f"N-{case.id}", case_id=case.id, received_at=at("2024-03-01 09:00")))
    session.flush()
    refresh_deadlines(session, now=at("2024-03-02 09:00"), settings=SETTINGS, case_ids=[cases[0].id])
    taken = session.execute(select(Deadline.key)).scalars().first()
    columns = ("key", "duty", "case_id", "subject_kind", "subject_id", "seq", "regime", "citation", "clock_start",
               "due", "status", "municipal_policy", "computed_at", "status_changed_at")
    template = session.execute(select(*(getattr(Deadline, c) for c in columns)).where(Deadline.key == taken)).one()
    rows = [(f"new:{i}", *template[1:]) for i in range(3)]
    rows.insert(1, tuple(template))  # the stored key, among new ones
    monkeypatch.setattr(deadline_writer, "BULK_ROWS", 1)
    inserted = deadline_writer.insert_new(session, Deadline.__table__, columns, rows)
    assert sorted(key for _id, key in inserted) == ["new:0", "new:1", "new:2"]
    stored_ids = dict(session.execute(select(Deadline.key, Deadline.id).where(Deadline.key.like("new:%"))).all())
    assert dict((key, id_) for id_, key in inserted) == stored_ids
    assert session.execute(select(func.count()).select_from(Deadline).where(Deadline.key == taken)).scalar_one() == 1


def test_a_rule_change_plans_every_row_afresh_and_leaves_an_unplanned_final_rows_index_entry_alone(
        session, municipality, monkeypatch):
    """Every rewritten row's alert plan is as before: an open one planned at the recompute, a
    final one not at all. On SQLite a final row with no plan stored is rewritten without setting
    ``next_alert_at`` (an indexed column); one whose plan was stored has it cleared."""
    from watchdog.rules import citations
    from watchdog.rules.types import Status

    poll_deadlines(session, now=NOW, settings=SETTINGS)
    session.commit()
    final = [Status.MET, Status.MET_LATE, Status.NOT_APPLICABLE]
    planned_final = session.execute(select(Deadline.id).where(Deadline.status.in_(final))
                                    .order_by(Deadline.id).limit(5)).scalars().all()
    assert len(planned_final) == 5
    session.execute(Deadline.__table__.update().where(Deadline.id.in_(planned_final)).values(next_alert_at=NOW))
    session.commit()
    for key, cited in list(citations.CITATIONS.items()):
        monkeypatch.setitem(citations.CITATIONS, key, citations.Citation(f"{cited.text} (rettet)", cited.confidence))
    written: list[tuple[tuple[str, ...], list[int]]] = []
    update_rows = deadline_writer.update_rows

    def recording(session_, table, columns, rows):
        written.append((tuple(columns), [row[0] for row in rows]))
        update_rows(session_, table, columns, rows)
    monkeypatch.setattr(deadline_writer, "update_rows", recording)
    later = at("2026-03-02 10:00")
    stats = refresh_deadlines(session, now=later, settings=SETTINGS)
    session.flush()
    rows = session.execute(select(Deadline.id, Deadline.status, Deadline.next_alert_at, Deadline.citation)).all()
    assert stats.deadlines_written == len(rows) > 300 and stats.status_changes == 0
    assert all(r.citation.endswith("(rettet)") for r in rows)
    assert all(r.next_alert_at is None for r in rows if r.status in final)
    assert all(r.next_alert_at == later for r in rows if r.status not in final)
    unplanned = {r.id for r in rows if r.status in final and r.id not in planned_final}
    without_plan = {i for columns, ids in written if "next_alert_at" not in columns for i in ids}
    assert sum(len(ids) for _, ids in written) == len(rows)
    if session.get_bind().dialect.name == "sqlite":
        assert without_plan == unplanned and len(unplanned) > 100
    else:
        assert without_plan == set()
    session.rollback()
