"""Stage 1 intake, sources: one round of every configured source, for the scheduler and ``tick``.

I/O: through ``drop_folder`` and ``sql_source`` (files, the vendor's database, ours). ``now``
comes in. Each source is isolated: one that fails is logged and recorded in its row, and the
others (and the deadline poll, which runs in its own job) go on. After each round the silence
check (``watch.check_source_silence``) looks at every source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from watchdog.db import session_scope
from watchdog.intake.sources import state
from watchdog.intake.sources.drop_folder import poll_drop_folder
from watchdog.intake.sources.sql_source import read_sql_source
from watchdog.intake.sources.watch import DROP_SOURCE, check_source_silence

log = logging.getLogger(__name__)


@dataclass
class SourceRound:
    """One source's round, in one line for ``watchdog tick`` and the logs."""

    source: str
    ok: bool
    summary: str


def drop_folder_round(engine: Engine, settings, *, now: datetime, replica: str) -> SourceRound:
    try:
        reports = poll_drop_folder(engine, settings, now=now, replica=replica)
    except Exception as exc:
        log.exception("drop folder: listing failed; the next round tries again")
        _record_error(engine, DROP_SOURCE, "drop_folder", now, exc)
        return SourceRound(DROP_SOURCE, False, f"error: {_one_line(exc)}")
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.outcome] = counts.get(report.outcome, 0) + 1
    ok = not counts.get("failed") and not counts.get("error")
    return SourceRound(DROP_SOURCE, ok, ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "empty")


def sql_round(engine: Engine, settings, cfg, *, now: datetime, replica: str) -> SourceRound:
    try:
        run = read_sql_source(engine, settings, cfg, now=now, replica=replica)
    except Exception as exc:  # a broken mapping file, our database down
        log.exception("sql source %s: round failed; the next round tries again", cfg.name)
        _record_error(engine, cfg.name, "sql", now, exc)
        return SourceRound(cfg.name, False, f"error: {_one_line(exc)}")
    summary = f"{run.outcome} ({'full' if run.full else 'incremental'} read, {run.rows} rows)"
    if run.outcome == "refused":
        summary += f": {len(run.problems)} problems, first: {run.problems[0]}"
    elif run.outcome == "error":
        summary += f": {run.detail}"
    return SourceRound(cfg.name, run.outcome not in ("refused", "error"), summary)


def watch_sources(engine: Engine, settings, *, now: datetime) -> int:
    try:
        with session_scope(engine) as session:
            return check_source_silence(session, settings, now=now)
    except Exception:
        log.exception("source silence check failed")
        return 0


def read_all_sources(engine: Engine, settings, *, now: datetime, replica: str) -> list[SourceRound]:
    """Every configured source once (``watchdog tick`` runs this before its poll)."""
    rounds = []
    if settings.intake.drop_folder is not None:
        rounds.append(drop_folder_round(engine, settings, now=now, replica=replica))
    for cfg in settings.intake.sql_sources:
        rounds.append(sql_round(engine, settings, cfg, now=now, replica=replica))
    if rounds:
        watch_sources(engine, settings, now=now)
    return rounds


def _record_error(engine: Engine, name: str, kind: str, now: datetime, exc: BaseException) -> None:
    try:
        with session_scope(engine) as session:
            state.get_state(session, name, kind, now=now)
            state.record_error(session, name, now=now, error=_one_line(exc))
    except Exception:
        log.warning("cannot record the error of source %s", name)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
