"""Stage 1 intake, sources: a vendor's columns → ours, as configuration (a TOML mapping file).

Pure apart from reading the mapping file: no database, no clock. The same mapping serves a file
import (``watchdog import --mapping``), the drop folder and a SQL source. A mapping file::

    [mapping]
    name = "Sagssystem X, natligt udtræk"
    naive_times = "local"          # a time without an offset is Danish time ("utc": UTC)

    [entities.cases]
    files = ["sager*.csv"]         # drop folder: which files hold this entity
    view = "rpt_sag"               # SQL source: a view or table (or query = "SELECT …")
    changed_column = "rettet"      # SQL source: the change column (a time or a rowversion)
    drop = ["CPR-nummer", "Barnets navn"]   # never read, never stored
    [entities.cases.columns]       # vendor column = our field
    "Sagsnummer" = "ext_id"
    [entities.cases.values.kind]   # vendor value = our value, per our field
    "Anbringelse med samtykke" = "placement_consent"
    [entities.cases.constants]     # our field = a fixed value
    team = "T-FAM"
    [entities.notifications.instants.received_at]   # one instant from a date and a time column
    date = "Modtaget dato"
    time = "Modtaget kl"

A vendor column is matched case-insensitively (spaces, dots and hyphens as ``_``). A column that
the mapping neither renames, combines nor drops must be one of our own field names, else it is
refused by name, as in a plain import; a column looking like a CPR number or a child's name is
refused unless the mapping drops it. A dropped column's cells are discarded before anything looks
at them (a SQL source does not even select them). A value the value map does not name passes
through unchanged, so the entity's validation names the record and field if it is wrong.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from watchdog.errors import Problem, ValidationFailed, WatchdogError
from watchdog.intake.parsing import HEADER, parse_date
from watchdog.intake.schemas import (
    ENTITIES,
    SENSITIVE_REASON,
    EntitySpec,
    entity_by_alias,
    field_kind,
    is_sensitive_column,
    normalize_column,
)

_ENTITY_KEYS = {"files", "view", "query", "changed_column", "drop", "columns", "values", "constants",
                "instants"}


class MappingError(WatchdogError):
    """The mapping file itself is wrong (unknown key, unknown field, bad TOML)."""


@dataclass(frozen=True)
class InstantParts:
    """Our instant field built from a vendor date column and an optional time column."""

    field: str
    date_column: str
    time_column: str | None


@dataclass
class EntityMapping:
    """How one of our entities is found and named in the vendor's export or database."""

    spec: EntitySpec
    files: list[str] = field(default_factory=list)
    view: str | None = None
    query: str | None = None
    changed_column: str | None = None
    drop: set[str] = field(default_factory=set)  # normalised vendor names
    columns: dict[str, str] = field(default_factory=dict)  # normalised vendor name -> our field
    shown: dict[str, str] = field(default_factory=dict)  # normalised vendor name -> as written
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # our field -> vendor value -> ours
    constants: dict[str, Any] = field(default_factory=dict)
    instants: list[InstantParts] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def matches_file(self, filename: str) -> bool:
        return any(fnmatch.fnmatch(filename.lower(), pattern.lower()) for pattern in self.files)

    def vendor_columns(self) -> list[str]:
        """The vendor columns this mapping reads (a SQL view is selected by exactly these)."""
        names = [self.shown[c] for c in self.columns]
        for parts in self.instants:
            names.append(parts.date_column)
            if parts.time_column:
                names.append(parts.time_column)
        if self.changed_column and normalize_column(self.changed_column) not in self.columns:
            names.append(self.changed_column)
        return list(dict.fromkeys(names))

    def role_of(self, column: str) -> str:
        """What the mapping does with one vendor column, in words (``watchdog mapping check``)."""
        norm = normalize_column(column)
        if norm in self.drop:
            return "dropped (never read)"
        if norm in self.columns:
            return f"→ {self.columns[norm]}"
        for parts in self.instants:
            if norm in (normalize_column(parts.date_column), normalize_column(parts.time_column or "")):
                return f"→ {parts.field} (with {parts.date_column}{' + ' + parts.time_column if parts.time_column else ''})"
        if self.changed_column and norm == normalize_column(self.changed_column):
            return "change column (read by a SQL source, not stored)"
        if norm in self.spec.fields:
            return f"→ {norm} (our own name)"
        return "REFUSED: not named in the mapping"

    def plan(self, header: list[str], source: str) -> tuple[ColumnPlan, list[Problem]]:
        """Decide for every vendor column of ``header`` what happens to it; name every refusal."""
        used = {normalize_column(p.date_column) for p in self.instants} | {
            normalize_column(p.time_column) for p in self.instants if p.time_column}
        changed = normalize_column(self.changed_column) if self.changed_column else None
        targets: list[str | None] = []
        problems: list[Problem] = []
        known = set(self.spec.fields)
        for raw in header:
            shown = str(raw or "").strip().lstrip("\ufeff")
            norm = normalize_column(shown)
            if not norm:
                problems.append(Problem(source, HEADER, "(header)", "a column has no name"))
                targets.append(None)
            elif norm in self.drop or norm in used or (norm == changed and norm not in self.columns):
                targets.append(None)  # dropped, or read through an instant or the change column
            elif norm in self.columns:
                targets.append(self.columns[norm])
            elif norm in known:
                targets.append(norm)
            elif is_sensitive_column(norm) or norm == "name":
                problems.append(Problem(source, HEADER, shown, SENSITIVE_REASON + ", or drop it in the mapping"))
                targets.append(None)
            else:
                problems.append(Problem(source, HEADER, shown,
                                        f"column not named in the mapping for {self.name}: rename it "
                                        f"under [entities.{self.name}.columns] or list it in drop"))
                targets.append(None)
        given = [t for t in targets if t] + list(self.constants) + [p.field for p in self.instants]
        for name in sorted({t for t in given if given.count(t) > 1}):
            problems.append(Problem(source, HEADER, name, "more than one column (or constant) gives this field"))
        present = {normalize_column(str(h or "")) for h in header}
        for parts in self.instants:
            for column in (parts.date_column, parts.time_column):
                if column and normalize_column(column) not in present:
                    problems.append(Problem(source, HEADER, column,
                                            f"column missing (the mapping builds {parts.field} from it)"))
        for name, info in self.spec.model.model_fields.items():
            if info.is_required() and name not in given:
                problems.append(Problem(source, HEADER, name, f"required column missing for {self.name}"))
        index = {normalize_column(str(h or "")): i for i, h in enumerate(header)}
        return ColumnPlan(self, targets, index), problems


@dataclass
class ColumnPlan:
    """A header decided: row cells → our field values (unconverted, for ``tabular_record``)."""

    entity: EntityMapping
    targets: list[str | None]
    index: dict[str, int]  # normalised vendor column -> position

    def columns(self) -> list[str]:
        """Our field names, in the order ``cells()`` gives their values."""
        return ([t for t in self.targets if t] + list(self.entity.constants)
                + [p.field for p in self.entity.instants])

    def cells(self, row: list[Any]) -> tuple[list[Any], list[tuple[str, str]]]:
        """The row's values for ``columns()``, and (field, reason) for cells that cannot be combined."""
        m = self.entity
        out: list[Any] = []
        for target, cell in zip(self.targets, row, strict=False):
            if target:
                out.append(_mapped_value(m.values.get(target), _plain(cell)))
        out.extend([None] * (len([t for t in self.targets if t]) - len(out)))
        out.extend(m.constants.values())
        bad: list[tuple[str, str]] = []
        for parts in m.instants:
            day = _cell(row, self.index.get(normalize_column(parts.date_column)))
            clock = _cell(row, self.index.get(normalize_column(parts.time_column))) if parts.time_column else None
            try:
                out.append(combine_date_time(day, clock))
            except ValueError as exc:
                out.append(None)
                bad.append((parts.field, str(exc)))
        return out, bad


@dataclass
class Mapping:
    """A whole mapping file: one ``EntityMapping`` per entity it names."""

    name: str
    path: Path | None
    naive_times: str = "local"
    entities: dict[str, EntityMapping] = field(default_factory=dict)

    def entity_for_file(self, filename: str) -> EntityMapping | None:
        found = [m for m in self.entities.values() if m.matches_file(filename)]
        return found[0] if len(found) == 1 else None

    def ordered(self) -> list[EntityMapping]:
        """The entities in dependency order (teams first, visits last)."""
        return [self.entities[n] for n in ENTITIES if n in self.entities]


def _plain(cell: Any) -> Any:
    """A driver's value as the cell reader knows it (Decimal → float, bytes → text)."""
    if isinstance(cell, Decimal):
        return float(cell)
    if isinstance(cell, bytes | bytearray | memoryview):
        return bytes(cell).decode("utf-8", errors="replace")
    return cell


def _cell(row: list[Any], i: int | None) -> Any:
    return None if i is None or i >= len(row) else _plain(row[i])


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _mapped_value(table: dict[str, Any] | None, value: Any) -> Any:
    if table is None or _empty(value):
        return value
    key = str(value).strip()
    if key in table:
        return table[key]
    folded = key.casefold()
    for vendor, ours in table.items():
        if vendor.casefold() == folded:
            return ours
    return value


def _time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, timedelta):  # MySQL TIME columns arrive as a timedelta
        seconds = int(value.total_seconds())
        if not 0 <= seconds < 86400:
            raise ValueError(f"{value} is not a time of day")
        return time(seconds // 3600, seconds % 3600 // 60, seconds % 60)
    if isinstance(value, datetime):
        return value.time()
    text = str(value).strip().replace(".", ":")
    parts = text.split(":")
    try:
        if len(parts) in (2, 3):
            return time(*(int(p) for p in parts))
        if len(parts) == 1 and text.isdigit() and len(text) == 4:  # 1430
            return time(int(text[:2]), int(text[2:]))
    except ValueError:
        pass
    raise ValueError(f"{value!r} is not a time of day (use HH:MM)")


def combine_date_time(day: Any, clock: Any) -> datetime | None:
    """A date cell and a time cell → a naive wall-clock time (the reader makes it an instant).

    No date: empty. A date without a time: 00:00, as a plain import reads a date in a time column.
    """
    if _empty(day):
        if not _empty(clock):
            raise ValueError(f"has a time ({clock}) but no date")
        return None
    if isinstance(day, datetime):
        day = day.date()
    elif not isinstance(day, date):
        day = parse_date(str(day))
    return datetime.combine(day, time(0, 0) if _empty(clock) else _time_of_day(clock))


def naive_as_utc(value: Any) -> Any:
    """For ``naive_times = "utc"``: a naive datetime is UTC, not Danish local time."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ------------------------------------------------------------------------------------------
# Reading a mapping file
# ------------------------------------------------------------------------------------------

def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; MappingError names the bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping {path} is not valid TOML: {exc}") from None
    return parse_mapping(data, path=path)


def parse_mapping(data: dict[str, Any], *, path: Path | None = None) -> Mapping:
    where = f" (in {path})" if path else ""
    unknown = sorted(set(data) - {"mapping", "entities"})
    if unknown:
        raise MappingError(f"unknown mapping key {unknown[0]!r}{where}: use [mapping] and [entities.NAME]")
    head = data.get("mapping", {})
    bad = sorted(set(head) - {"name", "vendor", "description", "naive_times"})
    if bad:
        raise MappingError(f"unknown key mapping.{bad[0]}{where}")
    naive = head.get("naive_times", "local")
    if naive not in ("local", "utc"):
        raise MappingError(f"mapping.naive_times must be 'local' or 'utc'{where}")
    mapping = Mapping(name=str(head.get("name") or (path.stem if path else "mapping")), path=path,
                      naive_times=naive)
    for entity_name, section in (data.get("entities") or {}).items():
        spec = entity_by_alias(entity_name)
        if spec is None:
            raise MappingError(f"unknown entity {entity_name!r}{where} (one of {', '.join(ENTITIES)})")
        mapping.entities[spec.name] = _entity(spec, section, f"entities.{entity_name}", where)
    if not mapping.entities:
        raise MappingError(f"the mapping names no entity{where}: add [entities.cases] and the others")
    return mapping


def _entity(spec: EntitySpec, section: dict[str, Any], key: str, where: str) -> EntityMapping:
    bad = sorted(set(section) - _ENTITY_KEYS)
    if bad:
        raise MappingError(f"unknown key {key}.{bad[0]}{where} (known: {', '.join(sorted(_ENTITY_KEYS))})")
    known = set(spec.fields)

    def ours(name: str, what: str) -> str:
        if name not in known:
            raise MappingError(f"{key}.{what}: {name!r} is not a field of {spec.name}{where} "
                               f"(known: {', '.join(spec.fields)})")
        return name

    files = section.get("files", [])
    if isinstance(files, str):
        files = [files]
    m = EntityMapping(spec, files=list(files), view=section.get("view"), query=section.get("query"),
                      changed_column=section.get("changed_column"))
    if m.view and m.query:
        raise MappingError(f"{key}: give view or query, not both{where}")
    m.drop = {normalize_column(c) for c in section.get("drop", [])}
    for vendor, target in (section.get("columns") or {}).items():
        norm = normalize_column(vendor)
        if norm in m.drop:
            raise MappingError(f"{key}.columns: {vendor!r} is also dropped{where}")
        m.columns[norm] = ours(str(target), f"columns.{vendor}")
        m.shown[norm] = vendor
    for target, table in (section.get("values") or {}).items():
        if not isinstance(table, dict):
            raise MappingError(f"{key}.values.{target} must be a table of vendor value = our value{where}")
        m.values[ours(target, f"values.{target}")] = {str(k).strip(): v for k, v in table.items()}
    for target, value in (section.get("constants") or {}).items():
        m.constants[ours(target, f"constants.{target}")] = value
    for target, parts in (section.get("instants") or {}).items():
        ours(target, f"instants.{target}")
        if field_kind(spec.model, target) != "instant":
            raise MappingError(f"{key}.instants.{target}: {target} is not a time field{where}")
        if not isinstance(parts, dict) or "date" not in parts or set(parts) - {"date", "time"}:
            raise MappingError(f"{key}.instants.{target} needs date = \"COLUMN\" and optionally time{where}")
        m.instants.append(InstantParts(target, parts["date"], parts.get("time")))
    return m


def refuse_if(problems: list[Problem]) -> None:
    if problems:
        raise ValidationFailed(problems)
