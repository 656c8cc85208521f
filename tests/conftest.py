"""Shared fixtures: a real database (SQLite by default, PostgreSQL when asked).

Set WATCHDOG_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test to run the
suite on PostgreSQL. Each test session gets its own PostgreSQL schema, so several runs at once
(developers, CI) never see each other's rows; the schema is dropped at the end.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from watchdog.db import is_sqlite, make_engine, upgrade
from watchdog.tables import metadata

PG_ENV = "WATCHDOG_TEST_DATABASE_URL"

# Real SMTP server and HTTPS Teams-workflow receiver for every delivery test.
pytest_plugins = ["fixtures_servers"]


def _base_url(tmp_path_factory) -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'watchdog-test.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """The URL of this session's test database (with its own schema on PostgreSQL)."""
    url = _base_url(tmp_path_factory)
    if is_sqlite(url):
        yield url
        return
    schema = f"wdtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine_factory(database_url) -> Iterator[Callable[..., Engine]]:
    """Make more engines on the same test database (for replicas, parallel workers)."""
    made: list[Engine] = []

    def factory(**kwargs) -> Engine:
        engine = make_engine(database_url, **kwargs)
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        engine.dispose()


@pytest.fixture(scope="session")
def migrated_engine(engine_factory) -> Engine:
    engine = engine_factory()
    upgrade(engine)  # the schema comes from the migrations, as in production
    return engine


def wipe(engine: Engine) -> None:
    """Delete every row of every table (keeps the schema and the Alembic version).

    On PostgreSQL the TRUNCATE needs an exclusive lock; a background thread of the previous test
    (a health server's scrape, a daemon's last query) can still hold a share lock and make
    PostgreSQL report a deadlock. That is housekeeping, not the code under test: try again.
    """
    from sqlalchemy.exc import OperationalError

    tables = [t.name for t in metadata.sorted_tables]
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if is_sqlite(engine):
                    for name in reversed(tables):
                        conn.execute(text(f'DELETE FROM "{name}"'))
                else:
                    conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in tables)
                                      + " RESTART IDENTITY CASCADE"))
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


@pytest.fixture
def engine(migrated_engine) -> Iterator[Engine]:
    """A migrated, empty database for one test."""
    wipe(migrated_engine)
    yield migrated_engine


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def on_postgres(database_url) -> bool:
    return not is_sqlite(database_url)


def at(text_: str) -> datetime:
    """An aware instant from ISO text; a naive text is read as Europe/Copenhagen local time."""
    from watchdog.clock import LOCAL_TZ

    value = datetime.fromisoformat(text_)
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(UTC)
