"""Stage 1 intake, sources: the drop folder, where the case system leaves its nightly export.

I/O: lists, reads and moves files in ``intake.drop_folder``; the database through the import
(``intake.upsert.import_records``) and ``sources.state``. ``now`` comes in.

Network shares (SMB/CIFS, NFS) deliver no file events, so the folder is *listed* every
``intake.drop_poll_seconds``. The layout::

    drop_folder/
        sager.csv, underretninger.csv, …   the top level is one batch
        2026-12-01/…                       so is every subfolder (one night's export each)
        processed/<time>-<batch>/          imported files, with receipt.json
        failed/<time>-<batch>/             refused files, with report.txt (every problem)

A file is complete once its size and mtime have stayed the same for one polling interval (a
copy in progress keeps changing them; a copy that preserves the mtime still changes the size), or
as soon as its marker appears (``FILE.done`` or ``FILE.csv.done``; a marker that names no file,
e.g. ``READY.done``, marks the whole batch). A batch is imported when every file in it is
complete — never half an export. Hidden files and ``*.tmp``, ``*.part``, ``~$*`` are ignored.

Each batch is imported all or nothing, in dependency order (the import sorts the entities), with
``intake.drop_mapping`` if set. Its content hash (the names and bytes of its files) is claimed in
``source_batch``: of several replicas, the one whose insert wins imports it; the others skip it;
the same content dropped again is moved to processed/ without touching the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from watchdog.clock import to_local
from watchdog.db import session_scope
from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.sources import state
from watchdog.intake.sources.mapping import Mapping, load_mapping
from watchdog.intake.sources.reading import read_mapped_files
from watchdog.intake.sources.watch import DROP_SOURCE, ops_alert
from watchdog.intake.upsert import import_records

log = logging.getLogger(__name__)

PROCESSED, FAILED = "processed", "failed"
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass
class BatchReport:
    """What happened to one batch in one listing."""

    name: str  # "." for the top level, else the subfolder's name
    files: list[str]
    outcome: str  # waiting | busy | imported | duplicate | failed | error
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    moved_to: Path | None = None
    detail: str = ""


@dataclass
class _Batch:
    name: str
    folder: Path
    data: list[Path]
    markers: list[Path]


def _ignored(path: Path) -> bool:
    n = path.name
    return n.startswith((".", "~$")) or n.lower().endswith(_IGNORED_SUFFIXES)


def _batches(root: Path, marker_suffix: str) -> list[_Batch]:
    """The top level and every subfolder (except processed/ and failed/), with their files."""
    folders = [(".", root)] + sorted((p.name, p) for p in root.iterdir()
                                     if p.is_dir() and p.name not in (PROCESSED, FAILED) and not _ignored(p))
    out = []
    for name, folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not _ignored(p))
        markers = [p for p in files if p.name.lower().endswith(marker_suffix.lower())]
        data = [p for p in files if p not in markers]
        if data:
            out.append(_Batch(name, folder, data, markers))
    return out


def _complete(session: Session, batch: _Batch, *, marker_suffix: str, interval: int, now: datetime,
              root: Path) -> bool:
    """Whether every data file of the batch is complete (records each file's listing)."""
    marked = {m.name[: -len(marker_suffix)].lower() for m in batch.markers}
    whole = any(all(d.name.lower() != n and d.stem.lower() != n for d in batch.data) for n in marked)
    ready = True
    for path in batch.data:
        st = path.stat()
        since = state.observe_file(session, DROP_SOURCE, str(path.relative_to(root)), size=st.st_size,
                                   mtime_ns=st.st_mtime_ns, now=now)
        if whole or path.name.lower() in marked or path.stem.lower() in marked:
            continue
        # A second earlier counts: the scheduler's interval jitters by a little.
        if now - since < timedelta(seconds=max(interval - 1, 0)) or since == now:
            ready = False
    return ready


def content_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def poll_drop_folder(engine: Engine, settings, *, now: datetime, replica: str,
                     mapping: Mapping | None = None) -> list[BatchReport]:
    """List the drop folder once; import every complete batch. Never raises for a bad batch."""
    intake = settings.intake
    root = Path(intake.drop_folder)
    if not root.is_dir():
        raise FileNotFoundError(f"intake.drop_folder {root} is not a folder (is the share mounted?)")
    if mapping is None and intake.drop_mapping is not None:
        mapping = load_mapping(intake.drop_mapping)
    suffix = intake.drop_marker_suffix
    reports = []
    with session_scope(engine) as session:
        state.get_state(session, DROP_SOURCE, "drop_folder", now=now)
        ready = []
        for batch in _batches(root, suffix):
            try:
                complete = _complete(session, batch, marker_suffix=suffix, interval=intake.drop_poll_seconds,
                                     now=now, root=root)
            except FileNotFoundError:  # moved away meanwhile (another replica imported it)
                continue
            if complete:
                ready.append(batch)
            else:
                reports.append(BatchReport(batch.name, [p.name for p in batch.data], "waiting"))
    for batch in ready:
        try:
            reports.append(_one_batch(engine, settings, batch, root=root, now=now, replica=replica,
                                      mapping=mapping))
        except FileNotFoundError:
            reports.append(BatchReport(batch.name, [p.name for p in batch.data], "gone",
                                       detail="moved away meanwhile (by another replica)"))
    return reports


def _one_batch(engine: Engine, settings, batch: _Batch, *, root: Path, now: datetime, replica: str,
               mapping: Mapping | None) -> BatchReport:
    names = [p.name for p in batch.data]
    digest = content_hash(batch.data)
    with Session(engine, expire_on_commit=False) as session:
        claim, row = state.claim_batch(session, DROP_SOURCE, digest, replica=replica, now=now,
                                       seconds=settings.intake.source_claim_seconds, files=names)
    if claim == "busy":
        return BatchReport(batch.name, names, "busy", detail=f"replica {row.claimed_by} is importing it")
    if claim == "imported":
        receipt = {"source": DROP_SOURCE, "batch": row.id, "content_hash": digest, "files": names,
                   "duplicate_of_batch": row.id, "imported_at": row.finished_at,
                   "note": "the same content was imported before; nothing was changed"}
        moved = _move(batch, root, PROCESSED, now=now, digest=digest, note=("receipt.json", _json(receipt)))
        return BatchReport(batch.name, names, "duplicate", moved_to=moved, detail=receipt["note"])
    try:
        records, file_problems = read_mapped_files(batch.data, mapping)
        result = import_records(engine, records, now=now, settings=settings, file_problems=file_problems)
    except ValidationFailed as exc:
        return _refused(engine, settings, batch, row.id, exc.problems, root=root, now=now, digest=digest)
    except Exception as exc:  # the database, a file vanishing, a conflict: try again next listing
        with session_scope(engine) as session:
            state.finish_batch(session, row.id, state="failed", now=now, rows=0, receipt={"error": str(exc)})
            state.record_error(session, DROP_SOURCE, now=now, error=f"batch {batch.name}: {exc}")
        log.warning("drop folder: batch %s not imported, tried again at the next listing: %s", batch.name, exc)
        return BatchReport(batch.name, names, "error", detail=str(exc))
    rows = len(records)
    receipt = {"source": DROP_SOURCE, "batch": row.id, "content_hash": digest, "files": names,
               "imported_at": now, "records": rows, **result.as_dict(),
               "warnings": [str(w) for w in getattr(result, "warnings", [])]}
    with session_scope(engine) as session:
        state.finish_batch(session, row.id, state="imported", now=now, rows=rows, receipt=receipt)
        state.record_read(session, DROP_SOURCE, now=now, rows=rows, batch=True)
        state.forget_files(session, DROP_SOURCE, [str(p.relative_to(root)) for p in batch.data])
    moved = _move(batch, root, PROCESSED, now=now, digest=digest, note=("receipt.json", _json(receipt)))
    log.info("drop folder: batch %s imported (%d records, %d cases changed) → %s", batch.name, rows,
             len(result.affected_case_ids), moved)
    return BatchReport(batch.name, names, "imported", rows=rows, moved_to=moved)


def _refused(engine: Engine, settings, batch: _Batch, batch_id: int, problems: list[Problem], *,
             root: Path, now: datetime, digest: str) -> BatchReport:
    names = [p.name for p in batch.data]
    report = "\n".join([f"watchdog refused this batch at {to_local(now):%d-%m-%Y %H:%M}: nothing of it was stored.",
                        f"{len(problems)} problem(s), by file, row and field:", "",
                        *(str(p) for p in problems), ""])
    moved = _move(batch, root, FAILED, now=now, digest=digest, note=("report.txt", report))
    with session_scope(engine) as session:
        state.finish_batch(session, batch_id, state="failed", now=now, rows=0,
                           receipt={"problems": [p.as_dict() for p in problems[:1000]], "moved_to": str(moved)})
        state.record_refused(session, DROP_SOURCE, now=now,
                             error=f"batch {batch.name} refused: {len(problems)} problems (first: {problems[0]})")
        state.forget_files(session, DROP_SOURCE, [str(p.relative_to(root)) for p in batch.data])
        first = "\n".join(f"- {p}" for p in problems[:5])
        ops_alert(session, settings, key=f"ops:source:{DROP_SOURCE}:{digest[:16]}",
                  subject=f"watchdog: en leverance i drop-mappen blev afvist ({len(problems)} problemer)",
                  text=(f"Leverancen {batch.name} ({', '.join(names)}) blev afvist; intet af den er gemt.\n\n"
                        f"Filerne og en rapport over hvert problem (fil, række, felt) ligger i {moved}.\n\n"
                        f"De første problemer:\n{first}\n\n"
                        "Ret udtrækket (eller mappingen) og læg filerne i drop-mappen igen."),
                  now=now)
    log.error("drop folder: batch %s refused (%d problems) → %s", batch.name, len(problems), moved)
    return BatchReport(batch.name, names, "failed", problems=problems, moved_to=moved)


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def _move(batch: _Batch, root: Path, where: str, *, now: datetime, digest: str,
          note: tuple[str, str]) -> Path | None:
    """Move the batch's files (and markers) to processed/ or failed/, with a receipt or report."""
    label = "top" if batch.name == "." else batch.name
    target = root / where / f"{to_local(now):%Y%m%dT%H%M%S}-{label}-{digest[:8]}"
    target.mkdir(parents=True, exist_ok=True)
    moved = 0
    for path in [*batch.data, *batch.markers]:
        try:
            shutil.move(str(path), str(target / path.name))
            moved += 1
        except FileNotFoundError:  # another replica moved it first
            continue
    if not moved:
        try:
            target.rmdir()
        except OSError:
            pass  # the replica that moved the files first moved them into this same folder
        return None
    (target / note[0]).write_text(note[1], encoding="utf-8")
    if batch.folder != root:
        try:
            batch.folder.rmdir()
        except OSError:
            pass  # something new arrived in it meanwhile: it is the next batch
    return target
