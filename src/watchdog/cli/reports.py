"""Report commands: `watchdog report barometer`, `watchdog report caseload`, `watchdog digest`."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer

from watchdog.cli import app, state
from watchdog.reports import ReportInputError

report_app = typer.Typer(help="Compliance and caseload reports (table, CSV, Excel, HTML).", no_args_is_help=True)
app.add_typer(report_app, name="report")

_FORMAT_HELP = "table (terminal), csv, xlsx (needs --output) or html."


def _date(value: str, option: str) -> date:
    from watchdog.timeinput import parse_day

    try:
        return parse_day(value)
    except ValueError:
        raise ReportInputError(f"{option} must be a date dd-mm-yyyy (or yyyy-mm-dd), got {value!r}") from None


def _instant(value: str | None, option: str) -> datetime | None:
    """A date or time as people type it; a date means the end of that day, a time without an
    offset is Danish local time."""
    if value is None:
        return None
    from watchdog.timeinput import parse_time

    try:
        return parse_time(value, end_of_day=True)
    except ValueError as exc:
        raise ReportInputError(f"{option}: {exc}") from None


def _emit(content: str | bytes, fmt: str, output: Path | None) -> None:
    if output is None:
        if isinstance(content, bytes):
            raise ReportInputError(f"--format {fmt} writes a file: add --output FILE")
        if fmt == "csv":
            from watchdog.cli.output import write_csv

            write_csv(content)  # the same bytes as the file would hold, byte-order mark included
        else:
            typer.echo(content, nl=False)
        return
    try:
        if isinstance(content, bytes):
            output.write_bytes(content)
        else:
            # CSV gets a byte-order mark so Excel reads it as UTF-8 (æ, ø, å, §).
            output.write_text(content, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    except OSError as exc:
        raise ReportInputError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)


@report_app.command("barometer")
def barometer_cmd(
    ctx: typer.Context,
    from_: str = typer.Option(..., "--from", help="First due date of the period, dd-mm-yyyy (or yyyy-mm-dd)."),
    to: str = typer.Option(..., "--to", help="Last due date of the period, dd-mm-yyyy (inclusive)."),
    team: Optional[str] = typer.Option(None, "--team", help="Only this team's cases (team id or name)."),
    fmt: str = typer.Option("table", "--format", "-f", help=_FORMAT_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Status the deadlines had in the cases at this instant (default: the period's end, "
                              "or now while the period runs)."),
    as_known_at: Optional[str] = typer.Option(
        None, "--as-known-at", help="Only what watchdog had recorded by this instant: reproduces a report "
                                    "printed then (default: everything recorded)."),
) -> None:
    """Ankestyrelsen-style tables per duty for deadlines due in a period: answers, cases, percents."""
    from watchdog.clock import utcnow
    from watchdog.db import session_scope
    from watchdog.reports.barometer import Period, barometer_report
    from watchdog.reports.output import render

    period = Period(_date(from_, "--from"), _date(to, "--to"))
    st = state(ctx)
    with session_scope(st.engine) as session:
        report = barometer_report(session, period, now=utcnow(), as_of=_instant(as_of, "--as-of"), team=team,
                                  municipality=st.settings.municipality,
                                  known_at=_instant(as_known_at, "--as-known-at"))
    _emit(render(report, fmt), fmt, output)
    if report.not_logged:
        # The same Danish notes as in the report itself, for a reader of the terminal.
        for note in report.notes[:-1]:
            typer.echo(f"bemærk: {note}", err=True)


@report_app.command("caseload")
def caseload_cmd(
    ctx: typer.Context,
    team: Optional[str] = typer.Option(None, "--team", help="Only this team (team id or name)."),
    fmt: str = typer.Option("table", "--format", "-f", help=_FORMAT_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Count the cases active at this instant (default: now)."),
) -> None:
    """Active cases per team and per full-time caseworker, against the recommended 20-30."""
    from watchdog.clock import utcnow
    from watchdog.db import session_scope
    from watchdog.reports.caseload import caseload_report
    from watchdog.reports.output import render

    st = state(ctx)
    when = _instant(as_of, "--as-of") or utcnow()
    with session_scope(st.engine) as session:
        report = caseload_report(session, now=when, team=team, municipality=st.settings.municipality)
    _emit(render(report, fmt), fmt, output)


@report_app.command("data-quality")
def data_quality_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", "-f", help="table (terminal), csv or xlsx (needs --output)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this warning kind (e.g. effected_before_decision)."),
    include_resolved: bool = typer.Option(False, "--all", help="Also warnings that a later import resolved."),
) -> None:
    """Implausible facts found by the imports (file, row, field), each of which can make a deadline wrong."""
    from watchdog.clock import utcnow
    from watchdog.db import session_scope
    from watchdog.reports.data_quality import data_quality_report, render_data_quality

    st = state(ctx)
    with session_scope(st.engine) as session:
        report = data_quality_report(session, now=utcnow(), municipality=st.settings.municipality,
                                     include_resolved=include_resolved, kind=kind)
    _emit(render_data_quality(report, fmt), fmt, output)


@app.command("digest")
def digest_cmd(
    ctx: typer.Context,
    preview: bool = typer.Option(False, "--preview", help="Render the digests without sending anything."),
    leader: Optional[str] = typer.Option(None, "--leader", help="Only this leader (worker id), with --preview."),
    week: Optional[str] = typer.Option(None, "--week", help="ISO week YYYY-Www, with --preview (default: the latest due)."),
    fmt: str = typer.Option("text", "--format", "-f", help="With --preview: text, html or card (Teams JSON)."),
) -> None:
    """The leaders' weekly digest: --preview renders it; without, plans the due digests into the outbox."""
    from watchdog.clock import utcnow
    from watchdog.db import session_scope
    from watchdog.reports.digest import enqueue_weekly_digests, preview_digests

    st = state(ctx)
    now = utcnow()
    if not preview:
        if leader or week:
            raise ReportInputError("--leader and --week only go with --preview (sending follows the schedule)")
        with session_scope(st.engine) as session:
            n = enqueue_weekly_digests(session, now=now, settings=st.settings)
        typer.echo(f"{n} digest messages planned into the outbox (delivered by the next delivery round)")
        return
    if fmt not in ("text", "html", "card"):
        raise ReportInputError(f"unknown --format {fmt!r} for a digest preview (use text, html or card)")
    with session_scope(st.engine) as session:
        found = preview_digests(session, now=now, settings=st.settings, leader=leader, week=week)
    if not found:
        typer.echo("no active team leaders: no digests", err=True)
    for worker, message in found:
        if fmt == "card":
            typer.echo(json.dumps(message.card, ensure_ascii=False, indent=2))
            continue
        typer.echo(f"=== {worker.ext_id} <{worker.email}>: {message.subject}")
        typer.echo(message.html if fmt == "html" else message.text)
