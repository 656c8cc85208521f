"""Stage 2, deadlines: reading plain column selects the cheap way, with the types SQLAlchemy gives.

The recompute reads every fact row and every deadline row of a batch of cases. Through
SQLAlchemy's result machinery each row became a ``Row`` and each instant went through SQLModel's
``UTCDateTime`` (a Python ``TypeDecorator`` call per value); together that cost more than the
database's own reading. Here the statement still goes through SQLAlchemy (compiled, cached, its
parameters bound), but the rows are fetched from the DB-API cursor as the driver's tuples and
converted by one generated function per query: a value costs one call only where its type needs
converting (enum members by name, aware UTC instants, dates and bools on SQLite).

Values are those SQLAlchemy's column types would give (``tests/test_deadline_writer.py`` and
``tests/test_deadlines_store.py`` compare them). Pure reading; used by ``watchdog.case_facts``
and ``watchdog.deadline_writer.read_stored``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import Boolean, Date, DateTime, Enum, type_coerce
from sqlalchemy.types import NullType

__all__ = ["typed_rows"]


def typed_rows(connection, query, make: Callable | None = None) -> list:
    """The rows of ``query`` (a select of plain columns) on ``connection`` (a SQLAlchemy
    ``Connection``), as tuples with the values SQLAlchemy's column types would give.
    ``make``: built from each row's tuple instead (e.g. a named tuple's ``_make``)."""
    columns = list(query.selected_columns)
    dialect = connection.dialect.name
    # The same statement with its columns typed as nothing, so SQLAlchemy sets up no result
    # processing; the rows are then taken from the DB-API cursor itself.
    bare = query.with_only_columns(*(type_coerce(c, NullType()).label(c.name) for c in columns),
                                   maintain_column_froms=True)
    result = connection.execute(bare)
    try:
        fetched = result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()
    env: dict = {}
    parts = []
    for i, column in enumerate(columns):
        kind = getattr(column.type, "impl", column.type)  # SQLModel's UTCDateTime decorates DateTime
        if isinstance(kind, DateTime) and dialect == "sqlite":
            # Naive UTC text on SQLite, parsed with its offset appended: one C call giving the
            # same aware instant as ``.replace(tzinfo=UTC)``, which cost ten times the parse.
            env["parse"] = datetime.fromisoformat
            parts.append(f"(None if r[{i}] is None else parse(r[{i}] + '+00:00'))")
            continue
        convert = _reader(dialect, kind)
        if convert is None:
            parts.append(f"r[{i}]")
        else:
            env[f"f{i}"] = convert
            parts.append(f"(None if r[{i}] is None else f{i}(r[{i}]))")
    if make is None:
        if not env:
            return [tuple(r) for r in fetched]
        row = eval(f"lambda r: ({', '.join(parts)},)", env)  # noqa: S307 - built from column indices only
    else:
        env["make"] = make
        row = eval(f"lambda r: make(({', '.join(parts)},))", env)  # noqa: S307 - built from column indices only
    return [row(r) for r in fetched]


def _reader(dialect: str, kind) -> Callable | None:
    if isinstance(kind, Enum) and kind.enum_class is not None:
        return {member.name: member for member in kind.enum_class}.__getitem__
    if isinstance(kind, DateTime):
        return _as_utc
    if isinstance(kind, Date) and dialect == "sqlite":
        return date.fromisoformat
    if isinstance(kind, Boolean) and dialect == "sqlite":
        return bool
    return None


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)
