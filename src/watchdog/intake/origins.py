"""Stage 1 intake: what an import keeps of each record after its chunk is gone — one small int.

Pure (no I/O). For every record of the import, keyed by entity and ``ext_id``: where it came from
(file and row: a duplicate names its first occurrence, a data-quality warning its file and row)
and, once its chunk is written, its row's id when other entities refer to it (teams, workers,
cases, notifications, investigations, measures), so that a later chunk's references to records
of this import are resolved without the database. Packed into one int (row number, source index,
id); a row "number" that is not a plain number, or a source index or id out of range, falls back
to a tuple.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from watchdog.intake.schemas import ENTITIES, PARTICIPANTS_FIELD, EntitySpec

_ROW_BITS = 40
_SOURCE_BITS = 24
_ID_SHIFT = _ROW_BITS + _SOURCE_BITS
_ROW_MASK = (1 << _ROW_BITS) - 1
_ORIGIN_MASK = (1 << _ID_SHIFT) - 1

#: The entities other records refer to by ``ext_id`` (reassessment participants are workers).
REFERENCED = frozenset({target for spec in ENTITIES.values() for target, _column in spec.refs.values()}
                       | {"workers"})


class Imported(NamedTuple):
    """What the data-quality checks need of an imported record, kept after its chunk is gone
    (a tuple: one is made for every record of the import)."""

    spec: EntitySpec
    ext_id: str
    source: str
    record: str
    given: frozenset[str]


class Origins:
    """Where each record of the import came from and, once written, its row's id: one small int
    per record (``ext_id`` → packed source, row and id)."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self.by_entity: dict[str, dict[str, Any]] = defaultdict(dict)
        self.support_not_given: set[str] = set()  # notifications that leave child_in_support alone

    def add(self, rec) -> tuple[str, str] | None:
        """Note ``rec`` (a ``ValidRecord``); the (source, record) of an earlier record with its
        ext_id, if any."""
        seen = self.by_entity[rec.spec.name]
        earlier = seen.get(rec.ext_id)
        if earlier is not None:
            return self._unpack(earlier)
        index = self._source_index.get(rec.source)
        if index is None:
            index = self._source_index[rec.source] = len(self.sources)
            self.sources.append(rec.source)
        number = rec.record
        # A plain number (ASCII digits, no leading zero, below 10**12 < 2**40) packs into the int.
        seen[rec.ext_id] = ((index << _ROW_BITS) | int(number)
                            if len(number) < 13 and number.isdigit() and number.isascii() and number[0] != "0"
                            and index < 1 << _SOURCE_BITS else (index, number, None))
        if rec.spec.name == "notifications" and "child_in_support" not in rec.given:
            self.support_not_given.add(rec.ext_id)
        return None

    def set_ids(self, entity: str, ids: Iterable[tuple[str, int]]) -> None:
        """The row ids of records of this import (already added), once their chunk is written."""
        seen = self.by_entity[entity]
        for ext_id, id_ in ids:
            packed = seen[ext_id]
            if type(packed) is int and id_ >= 0:
                seen[ext_id] = (packed & _ORIGIN_MASK) | (id_ + 1) << _ID_SHIFT
            else:
                index, number = self._index_number(packed)
                seen[ext_id] = (index, number, id_)

    def ids(self, entity: str, ext_ids: Iterable[str]) -> tuple[dict[str, int], set[str]]:
        """The ids known of ``ext_ids`` (records of this import, written), and the rest."""
        seen = self.by_entity.get(entity, {})
        found: dict[str, int] = {}
        rest: set[str] = set()
        for ext_id in ext_ids:
            packed = seen.get(ext_id)
            if type(packed) is int:
                if packed >> _ID_SHIFT:
                    found[ext_id] = (packed >> _ID_SHIFT) - 1
                    continue
            elif packed is not None and packed[2] is not None:
                found[ext_id] = packed[2]
                continue
            rest.add(ext_id)
        return found, rest

    def knows(self, entity: str, ext_id: str) -> bool:
        return ext_id in self.by_entity.get(entity, ())

    def _index_number(self, packed: Any) -> tuple[int, str]:
        if isinstance(packed, tuple):
            return packed[0], packed[1]
        return (packed & _ORIGIN_MASK) >> _ROW_BITS, str(packed & _ROW_MASK)

    def _unpack(self, packed: Any) -> tuple[str, str]:
        index, number = self._index_number(packed)
        return self.sources[index], number

    def origin(self, entity: str, ext_id: str) -> tuple[str, str]:
        """(source, record) of the record of ``entity`` with ``ext_id`` (one of this import)."""
        return self._unpack(self.by_entity[entity][ext_id])


def references(rec) -> Iterable[tuple[str, str, str]]:
    """(field, target entity, ext_id) of every reference the record (a ``ValidRecord``) gives."""
    given = rec.given
    data = rec.data.__dict__
    for fld, (target, _column) in rec.spec.refs.items():
        if fld in given:
            value = data[fld]
            if value is not None:
                yield fld, target, value
    if rec.spec.name == "notifications" and PARTICIPANTS_FIELD in given:
        for i, worker in enumerate(data[PARTICIPANTS_FIELD] or ()):
            yield f"{PARTICIPANTS_FIELD}[{i}]", "workers", worker
