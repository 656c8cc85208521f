"""Stage 1 intake: the records of a set of import files, read as they are imported.

I/O: reads the files it is given; nothing else. ``FileStream(paths)()`` yields the raw records of
every file in dependency order (teams before workers before cases …, whatever order the files
were given in), one row at a time: a file is read when its entity's turn comes, and no file's
records are held in memory. A JSON Lines file whose lines name their entities is read once per
entity it holds. A problem with a whole file (missing, unreadable, an unknown entity) comes as a
record holding only that problem, so the import refuses the batch and names it with the rest.

Calling the stream again reads the files again: the import does that when it runs again after
losing a race with a concurrent writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.parsing import RawRecord, file_spec, iter_file
from watchdog.intake.schemas import ENTITY_ORDER


def _refused(problems: Iterable[Problem]) -> Iterator[RawRecord]:
    for p in problems:
        yield RawRecord("?", p.source, p.record, {}, [p])


class FileStream:
    """The records of ``paths``, in dependency order, each time it is called."""

    def __init__(self, paths: Iterable[Path], *, entity: str | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.entity = entity
        self.notes: list[str] = []  # files that hold no records (refuse nothing), from the last reading

    def __call__(self) -> Iterator[RawRecord]:
        self.notes.clear()
        by_entity: dict[str, list[Path]] = {name: [] for name in ENTITY_ORDER}
        mixed: list[Path] = []  # JSON Lines files whose lines name their entity
        for path in self.paths:
            try:
                spec = file_spec(path, self.entity)
            except ValidationFailed as exc:
                yield from _refused(exc.problems)
                continue
            (by_entity[spec.name] if spec is not None else mixed).append(path)
        present: dict[Path, set[str]] = {}
        for name in ENTITY_ORDER:
            for path in by_entity[name]:
                yield from self._read(path, notes=self.notes)
            for path in mixed:
                if path in present and name not in present[path]:
                    continue
                first = path not in present
                seen = present.setdefault(path, set())
                for record in self._read(path, notes=self.notes if first else None, quiet=not first):
                    seen.add(record.entity)
                    if record.entity == name or (first and record.entity not in ENTITY_ORDER):
                        yield record

    def _read(self, path: Path, *, notes: list[str] | None, quiet: bool = False) -> Iterator[RawRecord]:
        try:
            yield from iter_file(path, entity=self.entity, notes=notes)
        except ValidationFailed as exc:
            if not quiet:
                yield from _refused(exc.problems)
