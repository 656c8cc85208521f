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
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from watchdog.errors import DatabaseError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory or URI database)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _prepare_sqlite_file(url: str, *, create: bool) -> None:
    """Create the database file (and its folder) with mode 0600 before SQLite opens it.

    With ``create=False`` a missing file is an error instead: SQLite would silently create an
    empty database (and a command that only reads would then fail on a missing table)."""
    path = sqlite_path(url)
    if path is None or path.exists():
        return
    if not create:
        raise DatabaseError(f"database file {path} does not exist: create it with `watchdog db upgrade` "
                            "(or check --database-url / WATCHDOG_DATABASE_URL)", exit_code=3)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    log.debug("created the database file %s", path)


def make_engine(url: str, *, echo: bool = False, create: bool = True, **kwargs) -> Engine:
    """Create an engine for ``url``. SQLite gets WAL, foreign keys and a busy timeout.

    ``create=False`` (every CLI command except ``db upgrade``) refuses a SQLite file that does
    not exist rather than creating an empty one."""
    if is_sqlite(url):
        _prepare_sqlite_file(url, create=create)
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


# SQLSTATEs (PostgreSQL) that mean the schema is missing or older than the code.
_NO_SCHEMA_SQLSTATES = {"42P01", "42703", "3F000"}  # undefined table, undefined column, no schema
_NO_SCHEMA_SQLITE = ("no such table", "no such column", "has no column named")
NO_SCHEMA_HINT = "the database has no schema (or an old one): run `watchdog db upgrade`"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def is_schema_error(exc: BaseException) -> bool:
    """Did the database answer, but without the tables or columns the code expects?"""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _NO_SCHEMA_SQLSTATES:
        return True
    return isinstance(exc, DBAPIError) and any(m in _reason(exc).lower() for m in _NO_SCHEMA_SQLITE)


def is_unreachable(exc: BaseException) -> bool:
    """Could the database not be reached at all (refused, unknown host, no such database, no file)?"""
    if not isinstance(exc, OperationalError) or is_schema_error(exc):
        return False
    orig = exc.orig
    if hasattr(orig, "sqlite_errorname"):  # sqlite3: only "cannot open" / "not a database" are ours
        return orig.sqlite_errorname in ("SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_PERM")
    # psycopg raises a failed connection without a SQLSTATE; from the server, class 08
    # (connection), 28 (authentication) and 3D000 (no such database) mean the same to a person.
    sqlstate = getattr(orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "28")) or sqlstate == "3D000"


def translate_error(exc: BaseException, url: str) -> DatabaseError | None:
    """A database exception as the one line a person can act on, or None if it is not one of ours."""
    where = make_url(url).render_as_string(hide_password=True)
    if is_schema_error(exc):
        return DatabaseError(f"{NO_SCHEMA_HINT} (database {where}: {_reason(exc)})", exit_code=2)
    if is_unreachable(exc):
        return DatabaseError(f"database {where} cannot be reached: {_reason(exc)}")
    return None


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


def require_schema(engine: Engine) -> None:
    """Refuse to start a long-running process (`run`, `serve`) on a database without the schema, or
    with an older one: it would fail on every round. A revision this version does not know (a newer
    one, during a rolling upgrade) is let through."""
    from alembic.script import ScriptDirectory

    current = current_revision(engine)
    if current is None:
        raise DatabaseError(f"{NO_SCHEMA_HINT} (database {safe_url(engine)} is empty)", exit_code=2)
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    if current != head and current in known:
        raise DatabaseError(f"{NO_SCHEMA_HINT} (database {safe_url(engine)} is at {current}, this version "
                            f"needs {head})", exit_code=2)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
