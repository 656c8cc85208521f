"""Stage 2, deadlines: the recompute's bulk writes (new deadline rows, rewritten rows, log events).

The recompute (``watchdog.recompute``) hands over plain tuples, one per row, with the columns
named beside them. A write of at least ``BULK_ROWS`` rows goes the driver's bulk way, inside
the caller's transaction: on SQLite one prepared statement through the DB-API ``executemany``;
on PostgreSQL ``COPY`` (new rows and rewritten ones through a temporary staging table, so that a
key already stored is skipped as by ``ON CONFLICT DO NOTHING`` and a rewrite is one ``UPDATE …
FROM``). Fewer rows go through SQLAlchemy Core statements, as before: for a handful of rows the
staging costs more than it saves. Both ways store the same values: the bulk way converts each
value as SQLAlchemy's column types would (enums by name, aware instants as UTC; SQLite's text
format), which ``tests/test_deadline_writer.py`` checks row for row.

``read_stored`` reads back the stored rows the recompute compares with, the same cheap way.

I/O: the database, through the session's connection. Never commits.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from datetime import UTC
from functools import lru_cache

from sqlalchemy import Boolean, DateTime, Enum, Table, bindparam, update
from sqlmodel import Session

from watchdog.db import dialect_insert
from watchdog.typed_rows import typed_rows

__all__ = ["BULK_ROWS", "insert_new", "insert_rows", "read_stored", "update_rows"]

BULK_ROWS = 100  # rows from which a write takes the driver's bulk way
_STAGE = "deadline_writer_stage"  # PostgreSQL: a temporary copy of ``deadline``'s columns


def insert_new(session: Session, table: Table, columns: Sequence[str], rows: list[tuple]) -> list[tuple[int, str]]:
    """Insert ``rows`` (values in ``columns`` order, ``key`` among them) into ``table``, skipping
    each row whose key is already stored; returns ``(id, key)`` of the rows inserted."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    if len(rows) < BULK_ROWS:
        stmt = (dialect_insert(session)(table).on_conflict_do_nothing(index_elements=["key"])
                .returning(table.c.id, table.c.key))
        return [tuple(r) for r in session.execute(stmt, [dict(zip(columns, row)) for row in rows]).all()]
    rows = _converted(dialect, table, columns, rows)
    cursor = _raw_cursor(session)
    names = _names(columns)
    if dialect == "sqlite":
        # Ids as SQLite would assign them (one above the highest; the table has no AUTOINCREMENT),
        # so that the rows inserted are known without RETURNING, which executemany cannot do.
        first = (cursor.execute(f'SELECT max(id) FROM "{table.name}"').fetchone()[0] or 0) + 1
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        cursor.executemany(f'INSERT INTO "{table.name}" (id, {names}) VALUES ({marks}) '
                           'ON CONFLICT ("key") DO NOTHING', [(first + i, *row) for i, row in enumerate(rows)])
        key_at = list(columns).index("key")
        if cursor.rowcount == len(rows):
            return [(first + i, row[key_at]) for i, row in enumerate(rows)]
        return cursor.execute(f'SELECT id, "key" FROM "{table.name}" WHERE id >= ? ORDER BY id', (first,)).fetchall()
    from psycopg.errors import UniqueViolation

    # Ids from the table's sequence in one query, then COPY straight into the table. A key already
    # stored (a subject moved here from another case, a concurrent refresh) fails the COPY: then
    # back to the savepoint, and the rows go through the staging table, skipping such keys.
    cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, %s)",
                   (len(rows),))
    ids = [i for (i,) in cursor.fetchall()]
    key_at = list(columns).index("key")
    cursor.execute("SAVEPOINT deadline_writer")
    try:
        with cursor.copy(f'COPY "{table.name}" (id, {names}) FROM STDIN') as copy:
            for new_id, row in zip(ids, rows):
                copy.write_row((new_id, *row))
    except UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT deadline_writer")
    else:
        cursor.execute("RELEASE SAVEPOINT deadline_writer")
        return [(new_id, row[key_at]) for new_id, row in zip(ids, rows)]
    _stage(cursor, table, columns, rows)
    cursor.execute(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {_STAGE} '
                   'ON CONFLICT ("key") DO NOTHING RETURNING id, "key"')
    inserted = cursor.fetchall()
    cursor.execute(f"TRUNCATE {_STAGE}")
    return inserted


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Append ``rows`` (values in ``columns`` order) to ``table`` (ids from its sequence)."""
    if not rows:
        return
    if len(rows) < BULK_ROWS:
        session.execute(table.insert(), [dict(zip(columns, row)) for row in rows])
        return
    dialect = session.get_bind().dialect.name
    rows = _converted(dialect, table, columns, rows)
    cursor = _raw_cursor(session)
    names = _names(columns)
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)
        return
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def update_rows(session: Session, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Set ``columns`` of the rows of ``table`` given as ``(id, *values in columns order)``."""
    if not rows:
        return
    if len(rows) < BULK_ROWS:
        session.execute(update(table).where(table.c.id == bindparam("b_id"))
                        .values({name: bindparam(name) for name in columns}),
                        [{"b_id": row[0], **dict(zip(columns, row[1:]))} for row in rows])
        return
    dialect = session.get_bind().dialect.name
    rows = _converted(dialect, table, ("id", *columns), rows)
    cursor = _raw_cursor(session)
    if dialect == "sqlite":
        sets = ", ".join(f'"{c}" = ?' for c in columns)
        cursor.executemany(f'UPDATE "{table.name}" SET {sets} WHERE id = ?', [(*row[1:], row[0]) for row in rows])
        return
    _stage(cursor, table, ("id", *columns), rows)
    sets = ", ".join(f'"{c}" = s."{c}"' for c in columns)
    cursor.execute(f'UPDATE "{table.name}" AS t SET {sets} FROM {_STAGE} AS s WHERE t.id = s.id')
    cursor.execute(f"TRUNCATE {_STAGE}")


def read_stored(session: Session, query) -> list:
    """The rows of ``query`` (a select of plain columns) with the types SQLAlchemy would give
    (enum members, aware UTC instants, bools), read through the DB-API cursor and converted the
    cheap way (``watchdog.typed_rows``): per value, SQLAlchemy's result processing cost as much
    as reading the rows. Each row is a named tuple (attribute and index access, as a Core row)."""
    names = tuple(c.name for c in query.selected_columns)
    return typed_rows(session.connection(), query, make=_row_type(names)._make)


@lru_cache(maxsize=16)
def _row_type(names: tuple[str, ...]):
    return namedtuple("StoredRow", names, rename=True)


# --------------------------------------------------------------------------------------------

def _raw_cursor(session: Session):
    """A DB-API cursor on the session's connection: inside the caller's transaction."""
    return session.connection().connection.driver_connection.cursor()


def _names(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _stage(cursor, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """PostgreSQL: ``rows`` copied into the staging table (made on first use in the connection;
    its rows go at commit). Only ``deadline`` is staged."""
    assert table.name == "deadline", table.name
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ON COMMIT DELETE ROWS AS "
                   f'SELECT * FROM "{table.name}" WITH NO DATA')
    with cursor.copy(f"COPY {_STAGE} ({_names(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _converted(dialect: str, table: Table, columns: Sequence[str], rows: list[tuple]) -> list[tuple]:
    """``rows`` with each value as SQLAlchemy would bind it for ``dialect``: one generated function
    per write, so a row costs one call and one per value that needs converting."""
    env: dict = {}
    parts = []
    for i, name in enumerate(columns):
        convert = _converter(dialect, table.c[name].type)
        if convert is None:
            parts.append(f"r[{i}]")
        else:
            env[f"f{i}"] = convert
            parts.append(f"(None if r[{i}] is None else f{i}(r[{i}]))")
    if not env:
        return rows
    row = eval(f"lambda r: ({', '.join(parts)},)", env)  # noqa: S307 - built from column indices only
    return [row(r) for r in rows]


def _converter(dialect: str, kind) -> Callable | None:
    kind = getattr(kind, "impl", kind)  # SQLModel's UTCDateTime decorates DateTime
    if isinstance(kind, Enum) and kind.enum_class is not None:
        names: dict = {}
        for member in kind.enum_class:
            names[member] = names[member.name] = member.name  # a StrEnum member also finds its value
        return names.__getitem__
    if isinstance(kind, DateTime):
        return _sqlite_instant() if dialect == "sqlite" else _aware
    if isinstance(kind, Boolean) and dialect == "sqlite":
        return int
    return None


def _aware(value):
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: every instant must be aware")
    return value


def _sqlite_instant() -> Callable:
    """An aware instant as SQLAlchemy stores it on SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``.
    Memoised by object for one write (its rows keep every value alive, so an id is never reused
    within it): most of a batch's instants are its one ``now``."""
    memo: dict[int, str] = {}

    def convert(value):
        text = memo.get(id(value))
        if text is None:
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: every instant must be aware")
            v = value.astimezone(UTC)
            text = memo[id(value)] = "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (
                v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
        return text
    return convert
