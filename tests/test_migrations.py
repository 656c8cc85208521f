"""The migrations and the models agree: a table changed without a migration fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from watchdog.tables import metadata


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, metadata)
    assert diff == [], (
        "models and migrations disagree; run `python -m watchdog.devtools.make_migration MSG`:\n"
        + "\n".join(map(str, diff))
    )


def test_a_worker_with_the_head_role_can_be_stored_after_the_migrations(session):
    from sqlmodel import select

    from watchdog.casestore import Worker, WorkerRole

    session.add(Worker(ext_id="H1", name="Afdelingsleder", email="h@x.dk", role=WorkerRole.HEAD))
    session.commit()
    assert session.exec(select(Worker.role).where(Worker.ext_id == "H1")).one() == WorkerRole.HEAD


def _fresh_database(tmp_path):
    """An empty database of the test's kind (SQLite file, or a new PostgreSQL schema)."""
    import os
    import uuid

    from sqlalchemy import text

    from watchdog.db import make_engine

    url = os.environ.get("WATCHDOG_TEST_DATABASE_URL")
    if not url:
        return make_engine(f"sqlite:///{tmp_path / 'mig.db'}"), lambda: None
    schema = f"wdmig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")

    def drop():
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return engine, drop


def test_the_0006_migration_fills_occurred_at_from_the_deadlines_facts(tmp_path):
    from sqlalchemy import text

    from conftest import at
    from watchdog.db import upgrade

    engine, drop = _fresh_database(tmp_path)
    try:
        upgrade(engine, "0002")
        rec = at("2026-11-01 10:00")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO team (id, ext_id, name) VALUES (1, 'T', 'T')"))
            conn.execute(text("INSERT INTO case_file (id, ext_id, team_id, opened_at, facts_changed_at, closed_at) "
                              "VALUES (1, 'S', 1, :o, :o, :c)"), {"o": at("2025-01-01 09:00"), "c": at("2025-03-01 12:00")})
            for id_, status, met in ((1, "MET", at("2025-04-01 10:00")), (2, "BREACHED", None), (3, "NOT_APPLICABLE", None)):
                conn.execute(text(
                    "INSERT INTO deadline (id, key, duty, case_id, subject_kind, subject_id, seq, regime, citation, "
                    "clock_start, due, status, met_at, municipal_policy, computed_at, status_changed_at) VALUES "
                    "(:id, :key, 'INVESTIGATION_4M', 1, 'INVESTIGATION', :id, 0, 'BL', 'BL § 20, stk. 3', :start, :due, "
                    ":status, :met, false, :rec, :rec)"),
                    {"id": id_, "key": f"k{id_}", "start": at("2025-01-10 09:00"), "due": at("2025-05-11 00:00"),
                     "status": status, "met": met, "rec": rec})
            events = [(1, 1, None, "OPEN", rec), (2, 1, "OPEN", "MET", rec), (3, 2, None, "BREACHED", rec),
                      (4, 3, None, "NOT_APPLICABLE", rec), (5, 2, None, "OPEN", at("2025-01-01 00:00"))]
            for id_, deadline_id, before, after, when in events:
                conn.execute(text(
                    "INSERT INTO outcome_event (id, at, kind, deadline_id, deadline_key, case_id, duty, from_status, "
                    "to_status) VALUES (:id, :at, 'status', :d, :key, 1, 'INVESTIGATION_4M', :b, :a)"),
                    {"id": id_, "at": when, "d": deadline_id, "key": f"k{deadline_id}", "b": before, "a": after})
        upgrade(engine)
        with engine.connect() as conn:
            from watchdog.outcome_log import OutcomeEvent
            from sqlmodel import select

            rows = {r.id: r for r in conn.execute(select(OutcomeEvent.id, OutcomeEvent.occurred_at,
                                                         OutcomeEvent.recorded_at))}
        assert rows[1].occurred_at == at("2025-01-10 09:00")  # first event, open: the clock start
        assert rows[2].occurred_at == at("2025-04-01 10:00")  # met: the completion
        assert rows[3].occurred_at == at("2025-05-11 00:00")  # breached: the due instant
        assert rows[4].occurred_at == at("2025-03-01 12:00")  # not applicable: the closing
        # The clock start lies after this event's recorded time: it keeps its recorded time.
        assert rows[5].occurred_at == rows[5].recorded_at == at("2025-01-01 00:00")
        assert rows[1].recorded_at == rec
    finally:
        drop()
