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
