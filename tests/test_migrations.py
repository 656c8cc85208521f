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
