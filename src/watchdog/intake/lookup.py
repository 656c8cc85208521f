"""Stage 1 intake: rows by a list of keys, in one statement whatever the list's length.

I/O: the database, in the session it is given (reads only).

``column IN (:a, :b, …)`` is a new statement for every length of list: SQLAlchemy expands it on
every execution and the driver parses it again (on PostgreSQL, psycopg's query conversion of a
900-parameter statement cost more than the database's work). Here the list is one bound
parameter instead, so the statement is compiled once and every execution reuses it:

- PostgreSQL: ``column = ANY(:keys)`` with an array (an index condition whatever the table's
  size; a JSON text parameter read by ``json_array_elements_text`` cost about 1 ms less client
  time per 2,000 keys, but makes a join whose plan rests on the planner's fixed guess of 100 rows
  for a function);
- SQLite: ``column IN (SELECT value FROM json_each(:keys))`` with the list as JSON text (the
  index on ``column`` is still used, one probe per key).

``typed`` reads whole rows the cheap way (``watchdog.typed_rows``: the driver's tuples, converted
per column type, not SQLAlchemy's result processing of every value) as named tuples.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, String, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY

from watchdog.typed_rows import typed_rows

KEYS = "keys"


def among(column, dialect: str):
    """The condition ``column`` is one of the bound parameter ``keys`` (see ``keys_param``)."""
    if dialect == "postgresql":
        item = Integer() if isinstance(column.type, Integer) else String()
        return column == any_(bindparam(KEYS, type_=ARRAY(item)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(KEYS, type_=String()))))


def keys_param(keys: Iterable[Any], dialect: str) -> dict[str, Any]:
    """The parameters for ``among``: the keys as the dialect wants them."""
    keys = list(keys)
    return {KEYS: keys if dialect == "postgresql" else json.dumps(keys)}


class Lookups:
    """Statements of the form ``SELECT columns FROM table WHERE key among :keys``, built once each."""

    def __init__(self, session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self._statements: dict[tuple, Any] = {}

    def _statement(self, key, columns: Sequence):
        cache_key = (key, tuple(columns))
        stmt = self._statements.get(cache_key)
        if stmt is None:
            stmt = self._statements[cache_key] = select(*columns).where(among(key, self.dialect))
        return stmt

    def rows(self, key, columns: Sequence, keys: Iterable[Any]) -> list:
        """The rows (``columns``) whose ``key`` is among ``keys``."""
        keys = list(keys)
        if not keys:
            return []
        return self.session.execute(self._statement(key, columns), keys_param(keys, self.dialect)).all()

    def typed(self, key, columns: Sequence, keys: Iterable[Any]) -> list:
        """The same rows as ``rows``, with the same values, as named tuples (attribute access as on a
        row), read through the driver's cursor (``watchdog.typed_rows``)."""
        keys = list(keys)
        if not keys:
            return []
        stmt = self._statement(key, columns).params(keys_param(keys, self.dialect))
        return typed_rows(self.session.connection(), stmt, make=_row_type(tuple(c.name for c in columns))._make)

    def mapping(self, key, value, keys: Iterable[Any]) -> dict:
        """``key`` → ``value`` of the rows whose ``key`` is among ``keys``."""
        return dict(self.rows(key, (key, value), keys))


@lru_cache(maxsize=32)
def _row_type(names: tuple[str, ...]):
    return namedtuple("StoredRow", names, rename=True)
