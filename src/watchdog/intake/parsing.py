"""Stage 1 intake: import files → raw records, with the Danish conventions Excel exports use.

I/O: reads the files it is given; nothing else (no database, no clock).

- CSV: ``;`` delimiter (``,`` or tab when the header has no ``;``); the encodings of
  ``watchdog.intake.encoding`` (UTF-8, UTF-16/32 with a byte-order mark, Windows-1252; damaged
  files refused with their line); cells as ``watchdog.intake.cells`` reads them (Danish dates and
  times, comma decimals, ja/nej), each column's reader chosen once from the header
  (``watchdog.intake.rows``). A cell whose later lines look like rows of the file (half a
  row's delimiters) is an unbalanced quote that swallowed them: refused with the lines. Thousands of unknown columns are named five
  at a time and summarised.
- XLSX: the first sheet (or the one named like the entity); header in row 1. Date cells are read as
  dates, date-time cells as Europe/Copenhagen local time; text cells as in CSV.
- JSON Lines: one JSON object per line, ISO 8601 values; instants must carry an offset. A line
  may name its entity with an ``"entity"`` key (so one file can hold several entities). A line
  nested deeper than the format, or holding a number of thousands of digits, is refused by line.
- Only regular files are read (a named pipe would block the import); a file that holds no
  records is a warning (``notes``), not an error.

Local times: a time in the autumn fold (02:00–03:00 on the last Sunday of October happens twice)
or in the spring gap (02:00–03:00 on the last Sunday of March does not exist) is refused with a
message asking for an ISO 8601 time with an offset. A date without a time in a time column means
00:00 local: the earliest reading, so a deadline computed from it is never later than the truth.

A record's number is its spreadsheet row (the header is row 1) or its line in a JSONL file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from watchdog.errors import Problem, ValidationFailed

# Cell values and file decoding have their own modules; parse_date & co. stay importable from here.
from watchdog.intake.cells import (  # noqa: F401
    convert_cell,
    local_to_utc,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_instant,
    parse_list,
)
from watchdog.intake.encoding import decode  # noqa: F401
# How a row becomes a record has its own module; RawRecord & co. stay importable from here.
from watchdog.intake.rows import (  # noqa: F401
    RawRecord,
    _is_empty,
    column_plan,
    plan_record,
    tabular_record,
    text_reader,
)
from watchdog.intake.schemas import (
    ENTITIES,
    SENSITIVE_REASON,
    EntitySpec,
    entity_by_alias,
    entity_from_filename,
    is_sensitive_column,
    normalize_column,
)

HEADER = "1 (header)"
SUPPORTED = (".csv", ".txt", ".xlsx", ".jsonl", ".ndjson")
ENTITY_KEY = "entity"


def _short(name: str, limit: int = 60) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


# A header with thousands of unknown columns is named this far, then summarised in one line.
MAX_NAMED_COLUMNS = 5


def check_columns(spec: EntitySpec, source: str, header: list[Any]) -> tuple[list[str], list[Problem]]:
    """Map the header to field names; refuse sensitive, unknown, duplicate and missing columns."""
    columns: list[str] = []
    problems: list[Problem] = []
    unknown: list[str] = []
    unnamed = 0
    known = set(spec.fields)
    for raw in header:
        name = normalize_column(str(raw or ""))
        columns.append(name)
        if not name:
            unnamed += 1
        elif name not in known and (is_sensitive_column(name) or name == "name"):
            problems.append(Problem(source, HEADER, _short(str(raw).strip()), SENSITIVE_REASON))
        elif name not in known:
            unknown.append(_short(str(raw).strip()))
    if unnamed:
        problems.append(Problem(source, HEADER, "(header)",
                                "a column has no name" if unnamed == 1 else f"{unnamed} columns have no name"))
    for raw in unknown[:MAX_NAMED_COLUMNS]:
        problems.append(Problem(source, HEADER, raw,
                                f"unknown column for {spec.name} (known: {', '.join(spec.fields)})"))
    if len(unknown) > MAX_NAMED_COLUMNS:
        problems.append(Problem(source, HEADER, "(header)",
                                f"and {len(unknown) - MAX_NAMED_COLUMNS} more unknown columns "
                                f"({len(header)} columns in all; {spec.name} has {len(spec.fields)})"))
    duplicated = sorted({c for c in columns if c and columns.count(c) > 1}) if len(columns) < 1000 else sorted(
        name for name, n in Counter(c for c in columns if c).items() if n > 1)
    for name in duplicated[:MAX_NAMED_COLUMNS]:
        problems.append(Problem(source, HEADER, _short(name), "the column appears more than once"))
    if len(duplicated) > MAX_NAMED_COLUMNS:
        problems.append(Problem(source, HEADER, "(header)",
                                f"and {len(duplicated) - MAX_NAMED_COLUMNS} more columns appear more than once"))
    present = set(columns)
    for name, info in spec.model.model_fields.items():
        if info.is_required() and name not in present:
            problems.append(Problem(source, HEADER, name, f"required column missing for {spec.name}"))
    return columns, problems


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def _delimiter(first_line: str) -> str:
    if ";" in first_line:
        return ";"
    if "\t" in first_line:
        return "\t"
    return ","


def resolve_entity(path: Path, entity: str | None) -> EntitySpec | None:
    if entity:
        spec = entity_by_alias(entity)
        if spec is None:
            raise ValidationFailed([Problem(path.name, "-", "(entity)",
                                            f"unknown entity {entity!r} (one of {', '.join(ENTITIES)})")])
        return spec
    return entity_from_filename(path.stem)


_QUOTE_HINT = "an unbalanced quote (\") swallows the rows after it: close the quote or remove it"


def _holds_rows(cell: str, delimiter: str, width: int) -> bool:
    """Whether a cell holds what looks like rows of the file: a line after a line break with at
    least half a row's delimiters. A note of several lines (one may hold a ';') is not refused."""
    if "\n" not in cell and "\r" not in cell:
        return False
    needed = max(1, (width - 1) // 2)
    return any(line.count(delimiter) >= needed for line in cell.splitlines()[1:])


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time, each with its line break (csv.reader reads them as
    from a file opened with ``newline=""``), without a second copy of the whole text."""
    if text.count("\r") != text.count("\r\n"):  # old Mac line breaks: let io split them
        yield from io.StringIO(text, newline="")
        return
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        stop = end if stop < 0 else stop + 1
        yield text[start:stop]
        start = stop


def read_csv_text(text: str, spec: EntitySpec, source: str) -> Iterator[RawRecord]:
    if not text.strip():
        return  # an empty file: read_file warns
    first = text.split("\n", 1)[0]
    delimiter = _delimiter(first)
    # strict: a quote at the end of the file that never closes is an error, not one huge last cell.
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ValidationFailed([Problem(source, HEADER, "(header)", f"unreadable CSV: {exc}; {_QUOTE_HINT}")]) from None
    columns, problems = check_columns(spec, source, header)
    if problems:
        raise ValidationFailed(problems)
    read_row = text_reader(spec, columns)
    number = 1
    line = reader.line_num
    try:
        for row in reader:
            number += 1
            first_line, line = line + 1, reader.line_num
            joined = "".join(row)
            if not joined or joined.isspace():
                continue  # blank lines at the end of an Excel export
            record = read_row(source, number, row)
            # A cell holds a line break only when its row took more than one line of the file.
            swallowed = None if line == first_line else next(
                (col for col, cell in zip(columns, row, strict=False) if _holds_rows(cell, delimiter, len(columns))),
                None)
            if swallowed is not None:
                record.problems = [p for p in record.problems if p.field != swallowed]
                record.problems.append(Problem(
                    source, str(number), swallowed,
                    f"holds line breaks and '{delimiter}' (lines {first_line}–{line} of the file): {_QUOTE_HINT}"))
            yield record
    except csv.Error as exc:
        raise ValidationFailed([Problem(source, str(number + 1), "(row)",
                                        f"unreadable CSV from line {line + 1}: {exc}; {_QUOTE_HINT}")]) from None


def read_xlsx(stream: BinaryIO, spec: EntitySpec, source: str) -> Iterator[RawRecord]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a broken file
        raise ValidationFailed([Problem(source, "-", "(file)", f"not a readable XLSX workbook: {exc}")]) from None
    try:
        sheet = next((ws for ws in workbook.worksheets if entity_by_alias(ws.title) is spec),
                     workbook.worksheets[0])
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return  # an empty sheet: read_file warns
        # Trailing empty header cells are formatting, not columns.
        header = list(header)
        while header and _is_empty(header[-1]):
            header.pop()
        columns, problems = check_columns(spec, source, header)
        if problems:
            raise ValidationFailed(problems)
        plan = column_plan(spec, columns)
        for number, row in enumerate(rows, start=2):
            if all(_is_empty(c) for c in row):
                continue
            yield plan_record(spec, plan, source, number, list(row))
    finally:
        workbook.close()


# The documented format nests no deeper than a line's object holding a list of ids.
_MAX_DEPTH = 3


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > _MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _json_line(line: str) -> tuple[Any, str | None]:
    """The parsed line, or None and why it cannot be read."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, f"nested too deeply (the format nests at most {_MAX_DEPTH} levels)"
    except ValueError:  # an integer of more digits than Python converts (4,300 by default)
        return None, f"holds a number of more than {sys.get_int_max_str_digits()} digits"
    if _too_deep(obj):
        return None, f"nested too deeply (the format nests at most {_MAX_DEPTH} levels)"
    return obj, None


def read_jsonl_text(text: str, spec: EntitySpec | None, source: str) -> Iterator[RawRecord]:
    # Split on "\n" only: str.splitlines() would also split inside a string holding U+2028.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj, why = _json_line(line)
        if why is not None:
            yield RawRecord(spec.name if spec else "?", source, str(number), {},
                            [Problem(source, str(number), "(line)", why)])
            continue
        if not isinstance(obj, dict):
            yield RawRecord(spec.name if spec else "?", source, str(number), {},
                            [Problem(source, str(number), "(line)", "is not a JSON object")])
            continue
        line_spec = spec
        named = obj.pop(ENTITY_KEY, None)
        if named is not None:
            line_spec = entity_by_alias(str(named))
            if line_spec is None:
                yield RawRecord("?", source, str(number), {},
                                [Problem(source, str(number), ENTITY_KEY, f"unknown entity {_short(str(named))!r}")])
                continue
        if line_spec is None:
            yield RawRecord("?", source, str(number), {}, [Problem(
                source, str(number), ENTITY_KEY,
                "the entity is unknown: name the file after it (cases.jsonl), use --entity, "
                'or give an "entity" key')])
            continue
        yield RawRecord(line_spec.name, source, str(number), obj)


def _open_regular(path: Path, source: str) -> BinaryIO:
    """The file opened for reading; refused at once when it is missing or not a regular file.

    Opened without blocking and checked on the open descriptor: a named pipe (FIFO) would
    otherwise block the import until something writes to it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ValidationFailed([Problem(source, "-", "(file)", f"the file does not exist ({path})")]) from None
    except OSError as exc:
        raise ValidationFailed([Problem(source, "-", "(file)", f"cannot read: {exc.strerror}")]) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValidationFailed([Problem(source, "-", "(file)",
                                        f"not a regular file ({path} is a directory, a pipe or a device): "
                                        "give the path of an export file")])
    return os.fdopen(fd, "rb")


def file_spec(path: Path, entity: str | None = None) -> EntitySpec | None:
    """The entity an import file holds (None: a JSON Lines file whose lines name theirs).
    Raises ValidationFailed if the file cannot be read as an import file at all."""
    path = Path(path)
    source = path.name
    suffix = path.suffix.lower()
    with _open_regular(path, source):
        if suffix not in SUPPORTED:
            raise ValidationFailed([Problem(source, "-", "(file)",
                                            f"unsupported file type {suffix or '(none)'} (use .csv, .xlsx or .jsonl)")])
        spec = resolve_entity(path, entity)
        if spec is None and suffix not in (".jsonl", ".ndjson"):
            raise ValidationFailed([Problem(
                source, "-", "(entity)",
                "cannot tell which entity the file holds: name it after the entity (e.g. cases.csv, "
                f"notifications.xlsx) or pass --entity ({', '.join(ENTITIES)})")])
    return spec


def iter_file(path: Path, *, entity: str | None = None, notes: list[str] | None = None) -> Iterator[RawRecord]:
    """The records of one import file, read as they are yielded (a whole-file problem raises
    ValidationFailed when it is met). ``notes`` collects warnings that refuse nothing (a file
    that holds no records)."""
    path = Path(path)
    source = path.name
    suffix = path.suffix.lower()
    spec = file_spec(path, entity)
    any_records = False
    with _open_regular(path, source) as stream:
        try:
            if suffix == ".xlsx":
                records = read_xlsx(stream, spec, source)
            else:
                text = decode(stream.read(), source)
                records = (read_jsonl_text(text, spec, source) if suffix in (".jsonl", ".ndjson")
                           else read_csv_text(text, spec, source))
            for record in records:
                any_records = True
                yield record
        except OSError as exc:
            raise ValidationFailed([Problem(source, "-", "(file)", f"cannot read: {exc.strerror}")]) from None
    if not any_records and notes is not None:
        notes.append(f"{source}: the file holds no records (nothing imported from it)")


def read_file(path: Path, *, entity: str | None = None, notes: list[str] | None = None) -> list[RawRecord]:
    """Read one import file. Raises ValidationFailed for a problem with the file as a whole."""
    return list(iter_file(path, entity=entity, notes=notes))


def read_files(paths: list[Path], *, entity: str | None = None,
               notes: list[str] | None = None) -> tuple[list[RawRecord], list[Problem]]:
    """Every file: the records of the readable ones, and the problems of the others.

    ``notes`` collects warnings that refuse nothing (a file that holds no records). For an import
    of any size, ``watchdog.intake.stream.FileStream`` reads the files as they are written instead.
    """
    records: list[RawRecord] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            records.extend(read_file(path, entity=entity, notes=notes))
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    return records, problems
