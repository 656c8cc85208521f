"""Stage 1 intake: import files → raw records, with the Danish conventions Excel exports use.

I/O: reads the files it is given; nothing else (no database, no clock).

- CSV: ``;`` delimiter (``,`` or tab when the header has no ``;``), UTF-8 with or without BOM,
  or Windows-1252 when the bytes are not UTF-8. Dates ``dd-mm-yyyy`` (also ``dd.mm.yyyy`` and ISO
  ``yyyy-mm-dd``); times ``dd-mm-yyyy HH:MM[:SS]`` in Europe/Copenhagen local time, or ISO 8601
  with an offset. Comma decimals (``0,8``). Booleans ``ja/nej``, ``true/false``, ``1/0``, ``x``/empty.
  Lists (reassessment participants) are comma-separated ext_ids in one cell.
- XLSX: the first sheet (or the one named like the entity); header in row 1. Date cells are read as
  dates, date-time cells as Europe/Copenhagen local time; text cells as in CSV.
- JSON Lines: one JSON object per line, ISO 8601 values; instants must carry an offset. A line
  may name its entity with an ``"entity"`` key (so one file can hold several entities).

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
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from watchdog.clock import LOCAL_TZ
from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.schemas import (
    ENTITIES,
    SENSITIVE_REASON,
    EntitySpec,
    entity_by_alias,
    entity_from_filename,
    field_kind,
    is_sensitive_column,
    normalize_column,
)

HEADER = "1 (header)"
SUPPORTED = (".csv", ".txt", ".xlsx", ".jsonl", ".ndjson")
ENTITY_KEY = "entity"


@dataclass
class RawRecord:
    """One record as read: which entity, where it came from, and its values (converted)."""

    entity: str
    source: str
    record: str
    values: dict[str, Any]
    # Problems found while reading the record's cells (bad date, bad number …).
    problems: list[Problem] = field(default_factory=list)


# ------------------------------------------------------------------------------------------
# Cell values (pure)
# ------------------------------------------------------------------------------------------

_DATE_DK = re.compile(r"^(\d{1,2})[-./](\d{1,2})[-./](\d{4})$")
_DATETIME_DK = re.compile(r"^(\d{1,2})[-./](\d{1,2})[-./](\d{4})[ T]+(\d{1,2})[:.](\d{2})(?::(\d{2}))?$")
_TRUE = {"ja", "j", "yes", "y", "true", "sand", "1", "x"}
_FALSE = {"nej", "n", "no", "false", "falsk", "0"}


def parse_date(text: str) -> date:
    text = text.strip()
    m = _DATE_DK.match(text)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date (use dd-mm-yyyy, e.g. 05-03-2024)")


def local_to_utc(naive: datetime) -> datetime:
    """A Europe/Copenhagen wall-clock time as an aware UTC instant; refuse fold and gap times."""
    first = naive.replace(tzinfo=LOCAL_TZ, fold=0)
    second = naive.replace(tzinfo=LOCAL_TZ, fold=1)
    shown = naive.strftime("%d-%m-%Y %H:%M")
    if first.utcoffset() != second.utcoffset():
        back = first.astimezone(UTC).astimezone(LOCAL_TZ).replace(tzinfo=None)
        if back != naive:
            raise ValueError(
                f"{shown} does not exist in Danish time (the clocks skip 02:00–03:00 that night); "
                "give the time in ISO 8601 with an offset, e.g. "
                f"{naive.date().isoformat()}T{naive:%H:%M}+01:00"
            )
        raise ValueError(
            f"{shown} happens twice in Danish time (the clocks go back at 03:00 that night); "
            f"give it in ISO 8601 with an offset: {naive.date().isoformat()}T{naive:%H:%M}+02:00 "
            f"(summer time) or …+01:00 (winter time)"
        )
    return first.astimezone(UTC)


def parse_instant(text: str, *, naive_is_local: bool = True) -> datetime:
    """``dd-mm-yyyy HH:MM`` local, ``dd-mm-yyyy`` (00:00 local), or ISO 8601 (with an offset)."""
    text = text.strip()
    m = _DATETIME_DK.match(text)
    if m:
        day, month, year, hour, minute, second = (int(g or 0) for g in m.groups())
        try:
            naive = datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date and time") from None
        return local_to_utc(naive)
    if _DATE_DK.match(text):
        return local_to_utc(datetime.combine(parse_date(text), time(0, 0)))
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (use dd-mm-yyyy HH:MM in Danish time, "
            "or ISO 8601 with an offset, e.g. 2024-03-05T14:30+01:00)"
        ) from None
    if value.tzinfo is None:
        if not naive_is_local:
            raise ValueError(f"{text!r} has no UTC offset (add one, e.g. +01:00)")
        return local_to_utc(value)
    return value.astimezone(UTC)


def parse_bool(text: str) -> bool:
    norm = text.strip().lower()
    if norm in _TRUE:
        return True
    if norm in _FALSE:
        return False
    raise ValueError(f"{text!r} is not yes/no (use ja or nej)")


def parse_decimal(text: str) -> float:
    norm = text.strip().replace(" ", "").replace("\u00a0", "")
    if "," in norm:
        # Danish: '.' groups thousands, ',' is the decimal mark.
        norm = norm.replace(".", "").replace(",", ".")
    try:
        value = float(norm)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (use a decimal comma, e.g. 0,8)") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,|]", text) if item.strip()]


def convert_cell(kind: str, value: Any) -> Any:
    """A spreadsheet cell (text, or a typed openpyxl value) as the input model wants it."""
    if isinstance(value, datetime):
        if kind == "date":
            if value.time() != time(0, 0):
                raise ValueError(f"{value:%d-%m-%Y %H:%M} is a time, not a date")
            return value.date()
        if kind == "instant":
            return local_to_utc(value) if value.tzinfo is None else value.astimezone(UTC)
        return value.strftime("%d-%m-%Y %H:%M")
    if isinstance(value, date):
        if kind == "instant":
            return local_to_utc(datetime.combine(value, time(0, 0)))
        return value if kind == "date" else value.strftime("%d-%m-%Y")
    if isinstance(value, time | timedelta):
        raise ValueError(f"{value} is a time of day without a date")
    if isinstance(value, bool):
        if kind == "bool":
            return value
        value = "ja" if value else "nej"
    if isinstance(value, int | float):
        if kind == "decimal":
            return float(value)
        if kind == "bool" and value in (0, 1):
            return bool(value)
        # An id typed as a number in Excel: 1001, not 1001.0.
        value = str(int(value)) if float(value).is_integer() else str(value)
    text = str(value)
    if kind == "date":
        return parse_date(text)
    if kind == "instant":
        return parse_instant(text)
    if kind == "bool":
        return parse_bool(text)
    if kind == "decimal":
        return parse_decimal(text)
    if kind == "list":
        return parse_list(text)
    return text


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def tabular_record(spec: EntitySpec, source: str, number: int, columns: list[str],
                   cells: list[Any]) -> RawRecord:
    """One row of a CSV/XLSX file → a record. Empty cells mean the field's default (or missing)."""
    rec = RawRecord(spec.name, source, str(number), {})
    if len(cells) > len(columns) and any(not _is_empty(c) for c in cells[len(columns):]):
        rec.problems.append(Problem(source, str(number), "(row)",
                                    f"has {len(cells)} cells but the header has {len(columns)} columns"))
    for col, cell in zip(columns, cells, strict=False):
        info = spec.model.model_fields[col]
        if _is_empty(cell):
            if not info.is_required():
                rec.values[col] = info.get_default(call_default_factory=True)
            continue
        try:
            rec.values[col] = convert_cell(field_kind(spec.model, col), cell)
        except (ValueError, OverflowError) as exc:
            rec.problems.append(Problem(source, str(number), col, str(exc)))
    return rec


def check_columns(spec: EntitySpec, source: str, header: list[Any]) -> tuple[list[str], list[Problem]]:
    """Map the header to field names; refuse sensitive, unknown, duplicate and missing columns."""
    columns: list[str] = []
    problems: list[Problem] = []
    known = set(spec.fields)
    for raw in header:
        name = normalize_column(str(raw or ""))
        columns.append(name)
        if not name:
            problems.append(Problem(source, HEADER, "(header)", "a column has no name"))
        elif name not in known and (is_sensitive_column(name) or name == "name"):
            problems.append(Problem(source, HEADER, str(raw).strip(), SENSITIVE_REASON))
        elif name not in known:
            problems.append(Problem(source, HEADER, str(raw).strip(),
                                    f"unknown column for {spec.name} (known: {', '.join(spec.fields)})"))
    for name in sorted({c for c in columns if c and columns.count(c) > 1}):
        problems.append(Problem(source, HEADER, name, "the column appears more than once"))
    for name, info in spec.model.model_fields.items():
        if info.is_required() and name not in columns:
            problems.append(Problem(source, HEADER, name, f"required column missing for {spec.name}"))
    return columns, problems


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 (what Danish Excel writes as 'CSV')."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


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


def read_csv_text(text: str, spec: EntitySpec, source: str) -> Iterator[RawRecord]:
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationFailed([Problem(source, "1", "(header)", "the file is empty")]) from None
    columns, problems = check_columns(spec, source, header)
    if problems:
        raise ValidationFailed(problems)
    number = 1
    try:
        for row in reader:
            number += 1
            if not any(cell.strip() for cell in row):
                continue  # blank lines at the end of an Excel export
            yield tabular_record(spec, source, number, columns, row)
    except csv.Error as exc:
        raise ValidationFailed([Problem(source, str(number + 1), "(row)", f"unreadable CSV: {exc}")]) from None


def read_xlsx(path: Path, spec: EntitySpec, source: str) -> Iterator[RawRecord]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a broken file
        raise ValidationFailed([Problem(source, "-", "(file)", f"not a readable XLSX workbook: {exc}")]) from None
    try:
        sheet = next((ws for ws in workbook.worksheets if entity_by_alias(ws.title) is spec),
                     workbook.worksheets[0])
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise ValidationFailed([Problem(source, "1", "(header)", "the sheet is empty")])
        # Trailing empty header cells are formatting, not columns.
        header = list(header)
        while header and _is_empty(header[-1]):
            header.pop()
        columns, problems = check_columns(spec, source, header)
        if problems:
            raise ValidationFailed(problems)
        for number, row in enumerate(rows, start=2):
            if all(_is_empty(c) for c in row):
                continue
            yield tabular_record(spec, source, number, columns, list(row))
    finally:
        workbook.close()


def read_jsonl_text(text: str, spec: EntitySpec | None, source: str) -> Iterator[RawRecord]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RawRecord(spec.name if spec else "?", source, str(number), {},
                            [Problem(source, str(number), "(line)", f"not valid JSON: {exc.msg}")])
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
                                [Problem(source, str(number), ENTITY_KEY, f"unknown entity {named!r}")])
                continue
        if line_spec is None:
            yield RawRecord("?", source, str(number), {}, [Problem(
                source, str(number), ENTITY_KEY,
                "the entity is unknown: name the file after it (cases.jsonl), use --entity, "
                'or give an "entity" key')])
            continue
        yield RawRecord(line_spec.name, source, str(number), obj)


def read_file(path: Path, *, entity: str | None = None) -> list[RawRecord]:
    """Read one import file. Raises ValidationFailed for a problem with the file as a whole."""
    path = Path(path)
    source = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ValidationFailed([Problem(source, "-", "(file)",
                                        f"unsupported file type {suffix or '(none)'} (use .csv, .xlsx or .jsonl)")])
    spec = resolve_entity(path, entity)
    if spec is None and suffix not in (".jsonl", ".ndjson"):
        raise ValidationFailed([Problem(
            source, "-", "(entity)",
            "cannot tell which entity the file holds: name it after the entity (e.g. cases.csv, "
            f"notifications.xlsx) or pass --entity ({', '.join(ENTITIES)})")])
    try:
        if suffix == ".xlsx":
            return list(read_xlsx(path, spec, source))
        text = decode(path.read_bytes())
    except OSError as exc:
        raise ValidationFailed([Problem(source, "-", "(file)", f"cannot read: {exc.strerror}")]) from None
    if suffix in (".jsonl", ".ndjson"):
        return list(read_jsonl_text(text, spec, source))
    return list(read_csv_text(text, spec, source))


def read_files(paths: list[Path], *, entity: str | None = None) -> tuple[list[RawRecord], list[Problem]]:
    """Read every file: the records of the readable ones, and the problems of the others."""
    records: list[RawRecord] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            records.extend(read_file(path, entity=entity))
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    return records, problems
