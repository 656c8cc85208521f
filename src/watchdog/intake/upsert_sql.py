"""Stage 1 intake: the upsert of one entity's table, and its rows sent the driver's cheapest way.

I/O: the database, through the SQLAlchemy ``Connection`` it is given (never commits).

One ``INSERT … ON CONFLICT (ext_id) DO UPDATE SET <every column> WHERE <a column differs>
RETURNING ext_id, id`` per chunk of rows. A row is a tuple of values in ``Upsert.names`` order;
each column's values are converted as SQLAlchemy's column types would bind them (enums by name,
aware instants; SQLite's UTC text), one step per column (``converter``):

- SQLite: multi-row ``VALUES`` (``_SQLITE_ROWS`` rows per statement, within the parameter limit)
  with ``RETURNING``: the driver's ``executemany`` cannot return rows, and looking the new ids up
  again afterwards cost as much as the insert; the multi-row statement also costs less than the
  ``executemany`` of one row at a time.
- PostgreSQL: a chunk of rows none of which was stored (a first import) is one binary ``COPY``
  straight into the table, with ids drawn from its sequence first, inside a savepoint: if a
  concurrent writer stored one of the same ``ext_id`` in the meantime, the COPY fails on the
  unique index, goes back to the savepoint, and the rows take the upsert. The upsert: a binary
  ``COPY`` into a temporary staging table (made on first use in the connection, emptied after
  each chunk), then ``INSERT … SELECT`` from it, whose ``RETURNING`` also says which rows the
  statement inserted (``xmax = 0``) rather than updated on conflict with a concurrent writer's.
  Measured against one statement over ``unnest`` of an array per column (psycopg dumps arrays in
  Python) and a JSON parameter (``json_populate_recordset``, ``jsonb`` arrays), the staged copy
  cost the least, and the straight copy less again.

Statements go through ``Connection.exec_driver_sql`` (SQLAlchemy's events see them); only the
COPY uses the driver's cursor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    SmallInteger,
    String,
    column,
    literal_column,
    or_,
    select,
    table,
)

#: Rows per SQLite statement (fewer when its parameter limit needs it): measured, 250–500 rows a
#: statement cost the least; a whole chunk in one statement cost more.
_SQLITE_ROWS = 500

#: One written row: (ext_id, id, whether this statement inserted it — None where unknown: SQLite).
Written = tuple[str, int, bool | None]


def sqlite_instant(value: datetime | None) -> str | None:
    """UTCDateTime's bind processor and SQLite's DATETIME one in a single step: the UTC wall time as
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (the same text, checked in tests/test_import_stream.py)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError("Datetime values must have timezone information.")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


def _sqlite_instants(values: Sequence) -> list:
    # Inline for the instants already in UTC (what the file import gives): the same text as
    # sqlite_instant, without a call per value.
    return [v if v is None else v.isoformat(" ", "microseconds")[:-6] if v.tzinfo is UTC else sqlite_instant(v)
            for v in values]


def converter(column_, dialect) -> Callable[[Sequence], list] | None:
    """The conversion of one column's values as its type would bind them for ``dialect`` (None:
    they go as they are), or a cheaper one that gives the same stored value for what the input
    models produce: a validated bool passes as it is, an instant goes to SQLite's text in one step,
    to PostgreSQL's binary COPY as it is (the driver refuses a naive one), an enum by name."""
    kind = column_.type
    base = getattr(kind, "impl", kind)  # SQLModel's UTCDateTime decorates DateTime
    if isinstance(base, Enum) and base.enum_class is not None:
        names: dict = {None: None}
        for member in base.enum_class:
            names[member] = names[member.name] = member.name  # a StrEnum member also finds its value
        lookup = names.__getitem__
        return lambda values: list(map(lookup, values))
    if isinstance(base, DateTime):
        return _sqlite_instants if dialect.name == "sqlite" else None
    if isinstance(base, Boolean):
        return None  # the models give True, False or None: what the driver takes
    generic = kind.dialect_impl(dialect).bind_processor(dialect)
    if generic is None or dialect.name == "postgresql" and isinstance(base, (Integer, Float, String, Date)):
        return None  # psycopg's binary dumpers take these values as they are
    return lambda values: list(map(generic, values))


def defaults_of(table_, names: Sequence[str]) -> dict[str, Any]:
    """The columns an INSERT of ``names`` also fills from their Python-side defaults (a new case
    starts dirty), with those defaults."""
    out = {}
    for col in table_.c:
        if col.name in names or col.primary_key or col.default is None:
            continue
        if not col.default.is_scalar:
            raise RuntimeError(f"the import cannot fill {table_.name}.{col.name}: no constant default")
        out[col.name] = col.default.arg
    return out


class Upsert:
    """The upsert of ``table_``'s rows: ``names`` (``ext_id`` first) are inserted, ``updated`` are
    set on conflict where one of them differs."""

    def __init__(self, table_, names: Sequence[str], updated: Sequence[str], dialect, insert) -> None:
        self.table = table_
        self.names = list(names)
        self.converters = [converter(table_.c[n], dialect) for n in self.names]
        self.dialect = dialect
        if dialect.name == "postgresql":
            self.stage = _stage_name(table_, self.names)
            stage = table(self.stage, *(column(n) for n in self.names))
            stmt = insert(table_).from_select(self.names, select(*stage.c))
            stmt = stmt.on_conflict_do_update(
                index_elements=["ext_id"], set_={c: stmt.excluded[c] for c in updated},
                where=or_(*(table_.c[c].is_distinct_from(stmt.excluded[c]) for c in updated)),
            ).returning(table_.c.ext_id, table_.c.id, literal_column("xmax = 0"))
            self.sql = stmt.compile(dialect=dialect).string
            self.types = [_copy_type(table_.c[n].type) for n in self.names]
            self._staged = False  # the staging table made (or found) in this writer's transaction
            return
        # SQLite: written out, as SQLAlchemy renders the same upsert, with its VALUES repeated.
        quote = dialect.identifier_preparer.quote
        name = dialect.identifier_preparer.format_table(table_)
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updated)
        differs = " OR ".join(f"{name}.{quote(c)} IS NOT excluded.{quote(c)}" for c in updated)
        self._sqlite = (f"INSERT INTO {name} ({', '.join(quote(n) for n in self.names)}) VALUES ",
                        "(" + ", ".join("?" for _ in self.names) + ")",
                        f" ON CONFLICT ({quote('ext_id')}) DO UPDATE SET {sets} WHERE {differs} "
                        f"RETURNING {quote('ext_id')}, {quote('id')}")

    def _converted(self, rows: list[tuple]) -> list[tuple]:
        if any(c is not None for c in self.converters):
            rows = list(zip(*(values if c is None else c(values)
                              for values, c in zip(zip(*rows), self.converters))))
        return rows

    def copy_new(self, connection, rows: list[tuple]) -> list[Written] | None:
        """PostgreSQL: insert ``rows``, none of which should be stored, by one COPY (``_copy_new``);
        None if one was stored after all (nothing of them is then)."""
        if not rows:
            return []
        return self._copy_new(connection.connection.driver_connection.cursor(), self._converted(rows))

    def write(self, connection, rows: list[tuple], *, all_new: bool = False) -> list[Written]:
        """Upsert ``rows``; (ext_id, id, inserted?) of every row inserted or changed.
        ``all_new``: none of the rows was stored when the chunk was read."""
        if not rows:
            return []
        rows = self._converted(rows)
        if self.dialect.name == "postgresql":
            cursor = connection.connection.driver_connection.cursor()
            if all_new:
                copied = self._copy_new(cursor, rows)
                if copied is not None:
                    return copied
            return self._upsert_staged(connection, cursor, rows)
        head, group, tail = self._sqlite
        limit = connection.connection.dbapi_connection.getlimit(_SQLITE_VARIABLE_NUMBER)
        per = max(1, min(_SQLITE_ROWS, limit // len(self.names)))
        written: list[Written] = []
        for start in range(0, len(rows), per):
            part = rows[start:start + per]
            sql = head + ", ".join([group] * len(part)) + tail
            written.extend((e, i, None) for e, i in
                           _fetched(connection.exec_driver_sql(sql, tuple(chain.from_iterable(part)))))
        return written

    def _copy_new(self, cursor, rows: list[tuple]) -> list[Written] | None:
        """PostgreSQL, rows none of which was stored: ids from the table's sequence, then one COPY
        straight into the table (no upsert needed). If a concurrent writer stored one of them in the
        meantime, the COPY fails on ``ext_id``: back to the savepoint, and None (then the upsert)."""
        from psycopg.errors import UniqueViolation

        cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{self.table.name}', 'id')) "
                       "FROM generate_series(1, %s)", (len(rows),))
        ids = [i for (i,) in cursor.fetchall()]
        cursor.execute("SAVEPOINT import_copy")
        try:
            with cursor.copy(f'COPY "{self.table.name}" (id, {_names(self.names)}) FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types([_copy_type(self.table.c.id.type), *self.types])
                for new_id, row in zip(ids, rows):
                    copy.write_row((new_id, *row))
        except UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT import_copy")
            return None
        cursor.execute("RELEASE SAVEPOINT import_copy")
        return [(row[0], new_id, True) for new_id, row in zip(ids, rows)]

    def _upsert_staged(self, connection, cursor, rows: list[tuple]) -> list[Written]:
        """PostgreSQL: the rows copied into the staging table, then upserted from it."""
        if not self._staged:  # made once per connection; its rows go at commit (and after each chunk)
            cursor.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{self.stage}" ON COMMIT DELETE ROWS AS '
                           f'SELECT {_names(self.names)} FROM "{self.table.name}" WITH NO DATA')
            self._staged = True
        with cursor.copy(f'COPY "{self.stage}" ({_names(self.names)}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.set_types(self.types)
            for row in rows:
                copy.write_row(row)
        written = _fetched(connection.exec_driver_sql(self.sql))
        cursor.execute(f'TRUNCATE "{self.stage}"')
        return written


_SQLITE_VARIABLE_NUMBER = 9  # sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER


def _fetched(result) -> list[tuple]:
    """The rows of ``result`` as the driver's tuples (SQLAlchemy's rows cost more than the insert)."""
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _names(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _stage_name(table_, names: Sequence[str]) -> str:
    """The staging table's name: its columns' names and types in it, so that a connection that
    outlived a change of the table's columns never copies into a stale stage."""
    shape = ";".join(f"{n}:{table_.c[n].type!r}" for n in names)
    return f"import_stage_{table_.name}_{hashlib.sha1(shape.encode()).hexdigest()[:10]}"


def _copy_type(kind) -> str:
    """The type psycopg dumps a column's values as for a binary COPY."""
    base = getattr(kind, "impl", kind)
    if isinstance(base, Enum):
        return "text"  # an enum's binary form is its label's text
    if isinstance(base, String):
        return "text"
    if isinstance(base, Boolean):
        return "bool"
    if isinstance(base, BigInteger):
        return "int8"
    if isinstance(base, SmallInteger):
        return "int2"
    if isinstance(base, Integer):
        return "int4"
    if isinstance(base, Float):
        return "float8"
    if isinstance(base, DateTime):
        return "timestamptz" if base.timezone else "timestamp"
    if isinstance(base, Date):
        return "date"
    raise RuntimeError(f"the import cannot copy a column of type {kind!r}")
