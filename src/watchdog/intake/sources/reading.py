"""Stage 1 intake, sources: vendor rows (from a file or a SQL result) → raw records, by a mapping.

I/O: reads the files it is given; nothing else. The rows go through the mapping
(``sources.mapping``) and then through the plain import's own cell reader
(``parsing.tabular_record``), so a mapped record is converted and validated exactly like a record
of a file in our own format, with the same messages naming source, row and field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.parsing import SUPPORTED, RawRecord, decode, read_file, read_jsonl_text, tabular_record
from watchdog.intake.schemas import ENTITIES, entity_by_alias, entity_from_filename
from watchdog.intake.sources.mapping import EntityMapping, Mapping, naive_as_utc


def mapped_records(entity: EntityMapping, header: list[str], rows: Iterable[list[Any]], *, source: str,
                   naive_times: str = "local", first_number: int = 2) -> list[RawRecord]:
    """Vendor rows under ``header`` → our raw records. Raises ValidationFailed for header problems."""
    plan, problems = entity.plan(header, source)
    if problems:
        raise ValidationFailed(problems)
    columns = plan.columns()
    records: list[RawRecord] = []
    for number, row in enumerate(rows, start=first_number):
        row = list(row)
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in row):
            continue
        cells, bad = plan.cells(row)
        if naive_times == "utc":
            cells = [naive_as_utc(c) for c in cells]
        record = tabular_record(entity.spec, source, number, columns, cells)
        record.problems.extend(Problem(source, str(number), name, reason) for name, reason in bad)
        records.append(record)
    return records


def _table_of(path: Path) -> tuple[list[Any], list[list[Any]]]:
    """The header and rows of a CSV or XLSX file, as cells (no entity checks)."""
    source = path.name
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several types for a broken file
            raise ValidationFailed([Problem(source, "-", "(file)", f"not a readable XLSX workbook: {exc}")]) from None
        try:
            rows = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
        finally:
            workbook.close()
        if not rows:
            raise ValidationFailed([Problem(source, "1", "(header)", "the sheet is empty")])
        header = rows[0]
        while header and (header[-1] is None or str(header[-1]).strip() == ""):
            header.pop()
        return header, [r[:len(header)] for r in rows[1:]]
    try:
        text = decode(path.read_bytes())
    except OSError as exc:
        raise ValidationFailed([Problem(source, "-", "(file)", f"cannot read: {exc.strerror}")]) from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first else "\t" if "\t" in first else ","
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ValidationFailed([Problem(source, "-", "(row)", f"unreadable CSV: {exc}")]) from None
    if not rows:
        raise ValidationFailed([Problem(source, "1", "(header)", "the file is empty")])
    return rows[0], rows[1:]


def _jsonl_records(path: Path, entity: EntityMapping, naive_times: str) -> list[RawRecord]:
    """JSON Lines through the plain reader (bad lines named as there), then each object mapped."""
    source = path.name
    try:
        text = decode(path.read_bytes())
    except OSError as exc:
        raise ValidationFailed([Problem(source, "-", "(file)", f"cannot read: {exc.strerror}")]) from None
    records: list[RawRecord] = []
    problems: list[Problem] = []
    for line in read_jsonl_text(text, entity.spec, source):
        if line.problems:
            problems.extend(line.problems)
            continue
        try:
            records.extend(mapped_records(entity, list(line.values), [list(line.values.values())], source=source,
                                          naive_times=naive_times, first_number=int(line.record)))
        except ValidationFailed as exc:
            problems.extend(Problem(p.source, line.record, p.field, p.reason) for p in exc.problems)
    if problems:
        raise ValidationFailed(problems)
    return records


def entity_of_file(path: Path, mapping: Mapping, entity: str | None = None) -> EntityMapping | None:
    """The mapped entity a file holds: ``entity`` if given, else the mapping's ``files`` patterns,
    else the file name as in a plain import."""
    if entity:
        spec = entity_by_alias(entity)
        if spec is None:
            raise ValidationFailed([Problem(path.name, "-", "(entity)",
                                            f"unknown entity {entity!r} (one of {', '.join(ENTITIES)})")])
        return mapping.entities.get(spec.name)
    found = mapping.entity_for_file(path.name)
    if found is not None:
        return found
    spec = entity_from_filename(path.stem)
    return mapping.entities.get(spec.name) if spec else None


def read_mapped_file(path: Path, mapping: Mapping | None, *, entity: str | None = None) -> list[RawRecord]:
    """Read one file through ``mapping`` (or as a plain import file without one)."""
    path = Path(path)
    if mapping is None:
        return read_file(path, entity=entity)
    source = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ValidationFailed([Problem(source, "-", "(file)",
                                        f"unsupported file type {suffix or '(none)'} (use .csv, .xlsx or .jsonl)")])
    target = entity_of_file(path, mapping, entity)
    if target is None:
        raise ValidationFailed([Problem(source, "-", "(entity)", (
            f"the mapping {mapping.name!r} does not say which entity this file holds: add its name to "
            "files = [...] under the entity in the mapping, or pass --entity"))])
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(path, target, mapping.naive_times)
    header, rows = _table_of(path)
    return mapped_records(target, [str(h) if h is not None else "" for h in header], rows, source=source,
                          naive_times=mapping.naive_times)


def read_mapped_files(paths: Iterable[Path], mapping: Mapping | None, *, entity: str | None = None
                      ) -> tuple[list[RawRecord], list[Problem]]:
    """Every file: the records of the readable ones, and the problems of the others."""
    records: list[RawRecord] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            records.extend(read_mapped_file(Path(path), mapping, entity=entity))
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    return records, problems
