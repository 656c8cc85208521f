"""Stage 1 intake: one row of a CSV/XLSX file → a raw record. Pure: no I/O, no clock.

The header of a file decides once how each of its columns is read (``column_plan``: which cell
reader of ``watchdog.intake.cells``, what an empty cell means), so a row costs only its cells. An
empty (or blank) cell means the field's default, or leaves a required field missing; a cell the
reader refuses is a problem naming the row and the field; cells beyond the header's columns are a
problem when any of them holds something.

Three readers of a row give the same record for the same cells: ``plan_record`` takes cells of
any type (a workbook's typed dates and numbers), ``text_record`` a row of text cells, and
``text_reader`` compiles the loop of ``text_record`` for one file's columns (straight-line code,
one step per column; a row of another width goes through ``text_record``). The compiled source
holds only column numbers: the names and readers are bound as values, never written as code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from watchdog.errors import Problem
from watchdog.intake.cells import (
    convert_cell,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_instant,
    parse_list,
)
from watchdog.intake.schemas import EntitySpec, field_kind


@dataclass(slots=True)
class RawRecord:
    """One record as read: which entity, where it came from, and its values (converted)."""

    entity: str
    source: str
    record: str
    values: dict[str, Any]
    # Problems found while reading the record's cells (bad date, bad number …).
    problems: list[Problem] = field(default_factory=list)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@functools.cache
def _fields(model) -> dict[str, tuple[Any, str]]:
    """Every field of an input model: its pydantic info and how its cell is read (once per model)."""
    return {name: (info, field_kind(model, name)) for name, info in model.model_fields.items()}


_NO_DEFAULT = object()  # a required field: an empty cell leaves it missing
_TEXT_READERS = {"date": parse_date, "instant": parse_instant, "bool": parse_bool, "decimal": parse_decimal,
                 "list": parse_list}


@functools.cache
def _readers(model) -> dict[str, tuple[str, Any, Any, Any]]:
    """Per field: (kind, how a text cell is read or None for text as it is, the value of an empty
    cell or _NO_DEFAULT, its pydantic info when the default is made anew for every record)."""
    out = {}
    for name, (info, kind) in _fields(model).items():
        if info.is_required():
            default, fresh = _NO_DEFAULT, None
        elif info.default_factory is None and isinstance(info.default, None | bool | int | float | str | Enum):
            default, fresh = info.default, None  # immutable: the same value serves every record
        else:
            default, fresh = _NO_DEFAULT, info
        out[name] = (kind, _TEXT_READERS.get(kind), default, fresh)
    return out


# One column of a file, decided once from its header: (field, how a text cell is read or None for
# text as it is, the value of an empty cell or _NO_DEFAULT, the pydantic info whose default is made
# anew for every record or None).
Column = tuple[str, Any, Any, Any]


@functools.lru_cache(maxsize=256)
def _plan(model, columns: tuple[str, ...]) -> tuple[Column, ...]:
    readers = _readers(model)
    return tuple((col, read, default, fresh) for col, (_kind, read, default, fresh)
                 in ((c, readers[c]) for c in columns))


def column_plan(spec: EntitySpec, columns: list[str]) -> tuple[Column, ...]:
    """How each column of a file's header is read, decided once for the file (the header's
    columns must be fields of ``spec``, as ``parsing.check_columns`` ensures)."""
    return _plan(spec.model, tuple(columns))


def _extra_cells(source: str, number: str, cells: list[Any], width: int) -> Problem | None:
    if len(cells) > width and any(not _is_empty(c) for c in cells[width:]):
        return Problem(source, number, "(row)", f"has {len(cells)} cells but the header has {width} columns")
    return None


def tabular_record(spec: EntitySpec, source: str, number: int, columns: list[str],
                   cells: list[Any]) -> RawRecord:
    """One row of a CSV/XLSX file → a record. Empty cells mean the field's default (or missing)."""
    return plan_record(spec, column_plan(spec, columns), source, number, cells)


def plan_record(spec: EntitySpec, plan: tuple[Column, ...], source: str, number: int,
                cells: list[Any]) -> RawRecord:
    """``tabular_record`` with the file's ``column_plan`` made once: cells of any type (a
    workbook's dates and numbers are taken as they are)."""
    record = str(number)
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    extra = _extra_cells(source, record, cells, len(plan))
    if extra is not None:
        problems.append(extra)
    for (col, read, default, fresh), cell in zip(plan, cells, strict=False):
        if cell is None or (cell.__class__ is str and (not cell or cell.isspace())):
            if fresh is not None:
                values[col] = fresh.get_default(call_default_factory=True)
            elif default is not _NO_DEFAULT:
                values[col] = default
            continue
        try:
            if cell.__class__ is str:  # CSV, and text cells of a workbook
                values[col] = cell if read is None else read(cell)
            else:
                values[col] = convert_cell(_readers(spec.model)[col][0], cell)
        except (ValueError, OverflowError) as exc:
            problems.append(Problem(source, record, col, str(exc)))
    return RawRecord(spec.name, source, record, values, problems)


def text_record(name: str, plan: tuple[Column, ...], source: str, number: int, cells: list[str]) -> RawRecord:
    """``plan_record`` for a row of text cells (a CSV row): the same values and problems, without
    asking each cell its type. ``name`` is the entity's."""
    record = str(number)
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    if len(cells) > len(plan):
        extra = _extra_cells(source, record, cells, len(plan))
        if extra is not None:
            problems.append(extra)
    for (col, read, default, fresh), cell in zip(plan, cells, strict=False):
        if not cell or cell.isspace():
            if default is not _NO_DEFAULT:
                values[col] = default
            elif fresh is not None:
                values[col] = fresh.get_default(call_default_factory=True)
        elif read is None:
            values[col] = cell
        else:
            try:
                values[col] = read(cell)
            except (ValueError, OverflowError) as exc:
                problems.append(Problem(source, record, col, str(exc)))
    return RawRecord(name, source, record, values, problems)


TextReader = Callable[[str, int, list[str]], RawRecord]


def _compile(name: str, plan: tuple[Column, ...]) -> TextReader:
    """``text_record`` for ``plan``, as straight-line code (see the module docstring)."""
    width = len(plan)
    env: dict[str, Any] = {"text_record": text_record, "name": name, "plan": plan, "Problem": Problem,
                           "RawRecord": RawRecord}
    lines = ["def read(source, number, cells):",
             f"    if len(cells) != {width}:",
             "        return text_record(name, plan, source, number, cells)",
             "    record = str(number)",
             "    values = {}",
             "    problems = []"]
    for i, (col, read, default, fresh) in enumerate(plan):
        env[f"col{i}"], env[f"read{i}"], env[f"default{i}"], env[f"fresh{i}"] = col, read, default, fresh
        lines += [f"    cell = cells[{i}]",
                  "    if cell and not cell.isspace():"]
        if read is None:
            lines.append(f"        values[col{i}] = cell")
        else:
            lines += ["        try:",
                      f"            values[col{i}] = read{i}(cell)",
                      "        except (ValueError, OverflowError) as exc:",
                      f"            problems.append(Problem(source, record, col{i}, str(exc)))"]
        if default is not _NO_DEFAULT:
            lines += ["    else:", f"        values[col{i}] = default{i}"]
        elif fresh is not None:
            lines += ["    else:", f"        values[col{i}] = fresh{i}.get_default(call_default_factory=True)"]
    lines.append("    return RawRecord(name, source, record, values, problems)")
    exec(compile("\n".join(lines), f"<text_reader {name}>", "exec"), env)  # noqa: S102 (numbers only, see above)
    return env["read"]


@functools.lru_cache(maxsize=256)
def _reader(name: str, model, columns: tuple[str, ...]) -> TextReader:
    return _compile(name, _plan(model, columns))


def text_reader(spec: EntitySpec, columns: list[str]) -> TextReader:
    """``reader(source, number, cells)`` → the record ``text_record`` gives for that row of text
    cells under ``columns`` (fields of ``spec``), compiled once per header."""
    return _reader(spec.name, spec.model, tuple(columns))
