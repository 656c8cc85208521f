"""*Team*: a leader's team per caseworker (breached, due within 7 and 14 days, open, cases per FTE).

``GET /team``: the leader's own team; the head of unit gets every team's totals with a link to each.
``GET /team/{team}``: one team (by its id in the case system). A caseworker's name links to that
caseworker's list (``/frister?medarbejder=…``). Absences and substitutes today are shown.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import select

from watchdog.casestore import Team
from watchdog.web.pages import log_view
from watchdog.web.queries import team_overview, team_page, teams_of
from watchdog.web.render import page
from watchdog.web.session import CurrentUser, DbSession, WebUser, context, require

router = APIRouter(include_in_schema=False)


def visible_team_ids(user: WebUser) -> list[int] | None:
    """None: every team (the head of unit); else the leader's own team."""
    if user.sees_everything:
        return None
    return [user.team_id] if user.team_id is not None else []


@router.get("/team")
def teams(request: Request, user: CurrentUser, session: DbSession):
    require(user.is_leader, "Teamsiden er for teamledere og afdelingsledere.")
    now = context(request).clock()
    found = teams_of(session, team_ids=visible_team_ids(user))
    if len(found) == 1:
        return _team(request, session, user, team_page(session, found[0], now=now), now=now, single=True)
    overviews = [team_overview(session, t, now=now) for t in found]
    log_view(request, session, user, "team", [])
    return page(request, "teams.html", user=user, title="Teams", overviews=overviews, now=now)


@router.get("/team/{team_ref}")
def one_team(request: Request, team_ref: str, user: CurrentUser, session: DbSession):
    require(user.is_leader, "Teamsiden er for teamledere og afdelingsledere.")
    team = session.exec(select(Team).where(Team.ext_id == team_ref)).first()
    if team is None:
        return page(request, "no_access.html", user=user, title="Ukendt team", status_code=404,
                    reason=f"Der er intet team med id «{team_ref[:40]}».")
    allowed = visible_team_ids(user)
    require(allowed is None or team.id in allowed, "Du kan kun se dit eget team.")
    now = context(request).clock()
    return _team(request, session, user, team_page(session, team, now=now), now=now, single=False)


def _team(request: Request, session, user: WebUser, data, *, now, single: bool):
    """One team's page; the case references it shows (its open acknowledgements) go to the access log."""
    log_view(request, session, user, "team", data.case_refs)
    return page(request, "team.html", user=user, title=f"Team: {data.overview.team.name}",
                overview=data.overview, now=now, single=single, **data.actions.context())
