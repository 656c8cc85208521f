"""`watchdog deadlines`: list the persisted deadlines, filtered, as a table, JSON or CSV.

Reads the ``deadline`` rows (``--refresh`` recomputes every case first, as of ``--now``).
Instants are printed in ISO 8601 with their offset, in Europe/Copenhagen time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Optional

import typer

from watchdog.cli import app, state
from watchdog.errors import WatchdogError

FORMATS = ("table", "json", "csv")
COLUMNS = ("id", "case_ref", "team", "duty", "regime", "citation", "clock_start", "due", "status", "met_at",
           "exception_reason", "responsible", "municipal_policy", "note", "key")


class BadOption(WatchdogError):
    """A command-line value that cannot be used."""


def parse_instant(text: str, option: str, *, end_of_day: bool = False) -> datetime:
    """A date or time as people type it (dd-mm-yyyy, dd-mm-yyyy HH:MM, ISO 8601); Danish local time
    unless an offset is given. A bare date is the start of that day (its end, for an upper bound)."""
    from watchdog.timeinput import parse_time

    try:
        return parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise BadOption(f"{option}: {exc}") from None


def _choices(values: list[str] | None, enum, option: str) -> list:
    out = []
    for value in values or []:
        for part in value.split(","):
            try:
                out.append(enum(part.strip()))
            except ValueError:
                allowed = ", ".join(m.value for m in enum)
                raise BadOption(f"{option} {part.strip()!r} is not one of: {allowed}")
    return out


def _iso(value: datetime | None) -> str | None:
    from watchdog.clock import to_local

    return to_local(value).isoformat() if value is not None else None


def _record(view) -> dict:
    row = {name: getattr(view, name) for name in COLUMNS}
    for name in ("clock_start", "due", "met_at"):
        row[name] = _iso(row[name])
    for name in ("duty", "regime", "status"):
        row[name] = row[name].value
    return row


@app.command("deadlines")
def deadlines(
    ctx: typer.Context,
    status: Optional[list[str]] = typer.Option(None, "--status", help="open, met, met_late, breached, excepted, not_applicable (repeat or comma-separate)."),
    duty: Optional[list[str]] = typer.Option(None, "--duty", help="A duty id, e.g. assessment_24h, investigation_4m (repeat or comma-separate)."),
    team: Optional[str] = typer.Option(None, "--team", help="Only cases of this team (its ext_id)."),
    worker: Optional[str] = typer.Option(None, "--worker", help="Only deadlines this worker is responsible for (ext_id)."),
    due_within: Optional[str] = typer.Option(None, "--due-within", help="Only deadlines due from now to now + this period, e.g. 2w, 14d, 36h."),
    due_from: Optional[str] = typer.Option(None, "--due-from", help="Only deadlines due at or after this date/time: dd-mm-yyyy, dd-mm-yyyy HH:MM or ISO 8601 (Danish time unless an offset is given)."),
    due_to: Optional[str] = typer.Option(None, "--due-to", help="Only deadlines due at or before this date/time (a bare date includes the whole day)."),
    fmt: str = typer.Option("table", "--format", help="table (readable), json or csv."),
    limit: int = typer.Option(200, "--limit", min=0, help="At most this many rows (0 = all)."),
    refresh: bool = typer.Option(False, "--refresh", help="Recompute every case's deadlines before listing."),
    now_text: Optional[str] = typer.Option(None, "--now", help="The instant to refresh and count --due-within from (default: the clock): dd-mm-yyyy HH:MM or ISO 8601."),
) -> None:
    """List deadlines with their duty, regime, paragraph, due time and status, soonest due first."""
    from watchdog.clock import utcnow
    from watchdog.db import session_scope
    from watchdog.deadlines import list_deadlines
    from watchdog.recompute import refresh_deadlines
    from watchdog.durations import parse_period
    from watchdog.rules.types import Duty, Status

    if fmt not in FORMATS:
        raise BadOption(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    statuses = _choices(status, Status, "--status")
    duties = _choices(duty, Duty, "--duty")
    now = parse_instant(now_text, "--now") if now_text else utcnow()
    lower = parse_instant(due_from, "--due-from") if due_from else None
    upper = parse_instant(due_to, "--due-to", end_of_day=True) if due_to else None
    if due_within:
        try:
            period = parse_period(due_within)
        except ValueError as exc:
            raise BadOption(f"--due-within: {exc}") from None
        lower = max(lower, now) if lower else now
        upper = min(upper, now + period) if upper else now + period

    st = state(ctx)
    with session_scope(st.engine) as session:
        if refresh:
            def progress(done: int, total: int) -> None:  # a national recompute takes a while
                if total > 10_000:
                    typer.echo(f"recomputing: {done:,} of {total:,} cases", err=True)

            stats = refresh_deadlines(session, now=now, settings=st.settings, progress=progress)
            typer.echo(f"recomputed {stats.cases_recomputed} cases: {stats.deadlines_written} deadlines written, "
                       f"{stats.status_changes} status changes"
                       + (f"; {stats.cases_failed} cases could not be computed (see watchdog health)"
                          if stats.cases_failed else ""), err=True)
        views = list_deadlines(session, statuses=statuses, duties=duties, team_ext_id=team,
                               worker_ext_id=worker, due_from=lower, due_to=upper, limit=limit or None)
    records = [_record(v) for v in views]
    if fmt == "json":
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        from watchdog.cli.output import write_csv
        from watchdog.reports.output import csv_text

        write_csv(csv_text(list(COLUMNS), ([r[name] for name in COLUMNS] for r in records)))
    else:
        _table(views)


def _table(views) -> None:
    from rich.table import Table

    from watchdog.cli.output import console as make_console
    from watchdog.clock import format_due, format_local

    console = make_console()
    if not views:
        console.print("no deadlines match")
        return
    table = Table(show_lines=False)
    for name in ("case", "duty", "paragraph", "clock start", "due", "status", "met", "worker", "note"):
        table.add_column(name, overflow="fold")
    for v in views:
        status = v.status.value
        if v.exception_reason:
            status += f" ({v.exception_reason})"
        note = "kommunal frist" if v.municipal_policy else ""
        if v.note:
            note = f"{note}; {v.note}" if note else v.note
        table.add_row(v.case_ref, v.duty.value, v.citation, format_local(v.clock_start), format_due(v.due),
                      status, format_local(v.met_at) if v.met_at else "", v.responsible or "", note)
    console.print(table)
    console.print(f"{len(views)} deadline(s); times are Europe/Copenhagen", highlight=False)
