"""Engines, sessions and migrations. The only module that creates engines.

SQLite (embedded default) runs in WAL mode with foreign keys on, and a new database file is
created with mode 0600 (it holds case references and workers' addresses). PostgreSQL is reached
through psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from watchdog.errors import DatabaseError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: str) -> None:
    """Create the database file (and its folder) with mode 0600 before SQLite opens it."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def make_engine(url: str, *, echo: bool = False, **kwargs) -> Engine:
    """Create an engine for ``url``. SQLite gets WAL, foreign keys and a busy timeout."""
    if is_sqlite(url):
        _prepare_sqlite_file(url)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised via every test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, echo=echo, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def dialect_insert(session_or_engine):
    """The INSERT construct of the session's dialect, for ON CONFLICT DO NOTHING / upserts."""
    bind = session_or_engine.get_bind() if hasattr(session_or_engine, "get_bind") else session_or_engine
    name = bind.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - settings refuse other databases
        raise RuntimeError(f"unsupported database dialect {name!r}")
    return insert


# SQLSTATEs of a transaction that lost a race and may simply be run again: serialization failure,
# deadlock, unique violation (a concurrent writer inserted the same key first).
_RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}


def is_concurrency_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` means a concurrent writer got in the way (a deadlock, a serialization
    failure, the same new key inserted first, SQLite's "database is locked"): running the whole
    transaction again is safe and will see the other writer's committed rows."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    text_ = str(orig).lower()
    return "database is locked" in text_ or "unique constraint failed" in text_


def wait_for_database(engine: Engine, *, attempts: int = 8, base_delay: float = 1.0,
                      max_delay: float = 30.0, sleep=time.sleep) -> None:
    """Connect, retrying with exponential backoff; raise DatabaseError with one line at the end."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if attempt == attempts:
                raise DatabaseError(
                    f"database {safe_url(engine)} unreachable after {attempts} attempts: {reason}"
                ) from None
            log.warning("database unreachable (attempt %d/%d): %s; retrying in %.0fs",
                        attempt, attempts, reason, delay)
            sleep(delay)
            delay = min(delay * 2, max_delay)


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` with Alembic."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
