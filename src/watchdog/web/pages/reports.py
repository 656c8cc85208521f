"""*Barometer* and *Sagstal*: the reports of ``watchdog report barometer|caseload`` as pages and downloads.

One code path: the pages call ``reports.barometer.barometer_report`` and ``reports.caseload.caseload_report``
and the downloads ``reports.output.render`` (CSV, XLSX), exactly as the CLI does; the template only
lays out the report's own tables, percents and SVG charts. For leaders and the head of unit
(aggregates only: no case reference is shown, so there is nothing to log).
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import select

from watchdog.casestore import Team
from watchdog.clock import local_date
from watchdog.reports import ReportInputError, charts
from watchdog.reports.barometer import I_ALT, Period, barometer_report
from watchdog.reports.caseload import caseload_report
from watchdog.reports.output import dec_text, pct_text, render
from watchdog.web import forms
from watchdog.web.queries import team_choices
from watchdog.web.render import page
from watchdog.web.session import CurrentUser, DbSession, context, require

router = APIRouter(include_in_schema=False)

_MEDIA = {"csv": "text/csv; charset=utf-8",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _team_choice(session, team: str | None, problems: forms.Problems) -> str | None:
    if not team:
        return None
    if session.exec(select(Team.id).where(Team.ext_id == team)).first() is None:
        problems.add("team", f"Der er intet team med id «{team[:40]}»; vælg et team fra listen")
        return None
    return team


def _period(fra: str | None, til: str | None, today: date, problems: forms.Problems) -> Period | None:
    start = forms.parse_date(fra, "fra", "Fra-datoen", problems) if fra else date(today.year, 1, 1)
    end = forms.parse_date(til, "til", "Til-datoen", problems) if til else today
    if problems or start is None or end is None:
        return None
    try:
        return Period(start, end)
    except ReportInputError:
        problems.add("til", "Perioden slutter før den begynder; ret fra- eller til-datoen")
        return None


def _download(content: str | bytes, fmt: str, name: str) -> Response:
    body = ("\ufeff" + content).encode("utf-8") if isinstance(content, str) else content  # BOM: Excel reads UTF-8
    return Response(body, media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"',
                             "Cache-Control": "no-store"})


def _barometer(request: Request, user, session, fra, til, team):
    require(user.sees_reports, "Barometeret er for teamledere og afdelingsledere.")
    ctx = context(request)
    now = ctx.clock()
    problems = forms.Problems()
    chosen = _team_choice(session, team, problems)
    period = _period(fra, til, local_date(now), problems)
    report = None
    if period is not None:
        try:
            report = barometer_report(session, period, now=now, team=chosen, municipality=ctx.settings.municipality)
        except ReportInputError:
            problems.add("fra", "Perioden må ikke begynde i fremtiden; vælg en fra-dato til og med i dag")
    return ctx, problems, period, report


@router.get("/barometer")
def barometer(request: Request, user: CurrentUser, session: DbSession, fra: str | None = None,
              til: str | None = None, team: str | None = None):
    _, problems, period, report = _barometer(request, user, session, fra, til, team)
    teams = team_choices(session)
    query = request.url.query
    return page(request, "barometer.html", user=user, title="Barometer", report=report, problems=problems,
                teams=teams, team=team or "", fra=fra or (forms.dk(period.start) if period else ""),
                til=til or (forms.dk(period.end) if period else ""), query=query, I_ALT=I_ALT,
                pct_text=pct_text, pie_of=_pie_of, trend=charts.trend, colour_index=_colour_index)


@router.get("/barometer.{fmt}")
def barometer_download(request: Request, fmt: str, user: CurrentUser, session: DbSession, fra: str | None = None,
                       til: str | None = None, team: str | None = None):
    if fmt not in _MEDIA:
        return page(request, "no_access.html", user=user, title="Ukendt format", status_code=404,
                    reason="Barometeret kan hentes som CSV eller XLSX.")
    _, _, period, report = _barometer(request, user, session, fra, til, team)
    if report is None:
        return barometer(request, user, session, fra, til, team)
    return _download(render(report, fmt), fmt, f"barometer-{period.start}-{period.end}")


def _pie_of(table) -> str:
    return charts.pie([(r.answer, r.count) for r in table.rows], title=f"Tabel {table.number}: fordeling af svar")


def _colour_index(answer: str, index: int) -> int:
    """Which swatch class (``swatch-N``) shows the colour the report's chart gives this answer."""
    palette = ["#2e7d32", "#f9a825", "#c62828", "#ef6c00", "#6a1b9a", "#1565c0"]
    colour = charts.colour(answer, index)
    return palette.index(colour) if colour in palette else 5


def _caseload(request: Request, user, session, team):
    require(user.sees_reports, "Sagstal er for teamledere og afdelingsledere.")
    ctx = context(request)
    problems = forms.Problems()
    chosen = _team_choice(session, team, problems)
    report = caseload_report(session, now=ctx.clock(), team=chosen, municipality=ctx.settings.municipality)
    return problems, report


@router.get("/sagstal")
def caseload(request: Request, user: CurrentUser, session: DbSession, team: str | None = None):
    problems, report = _caseload(request, user, session, team)
    teams = team_choices(session)
    return page(request, "caseload.html", user=user, title="Sagstal", report=report, problems=problems,
                teams=teams, team=team or "", query=request.url.query, dec_text=dec_text)


@router.get("/sagstal.{fmt}")
def caseload_download(request: Request, fmt: str, user: CurrentUser, session: DbSession, team: str | None = None):
    if fmt not in _MEDIA:
        return page(request, "no_access.html", user=user, title="Ukendt format", status_code=404,
                    reason="Sagstal kan hentes som CSV eller XLSX.")
    problems, report = _caseload(request, user, session, team)
    if problems:
        return caseload(request, user, session, team)
    return _download(render(report, fmt), fmt, f"sagstal-{local_date(report.as_of)}")
