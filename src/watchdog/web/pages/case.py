"""*Sag*: one case reference with every deadline, its history and every alert (``GET /sag/{case_ref}``).

A caseworker opens the cases they are responsible for, a leader their team's, the head of unit any.
The view is written to the access log with the case reference.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request

from watchdog.web.case_history import case_history, find_case, responsible_ids
from watchdog.web.pages import log_view
from watchdog.web.render import page
from watchdog.web.session import CurrentUser, DbSession, WebUser, context, require

router = APIRouter(include_in_schema=False)


def may_open_case(session, user: WebUser, case) -> bool:
    if user.sees_everything:
        return True
    if user.is_leader and user.team_id is not None and case.team_id == user.team_id:
        return True
    return user.has_own_cases and user.worker_id in responsible_ids(session, case)


@router.get("/sag/{case_ref}")
def case_page(request: Request, case_ref: str, user: CurrentUser, session: DbSession):
    require(not user.is_admin, "It-drift ser ikke sagsdata; brug siden Drift.")
    case = find_case(session, case_ref)
    if case is None:
        return page(request, "no_access.html", user=user, title="Ukendt sag", status_code=404,
                    reason=f"Der er ingen sag med sagsnummer «{case_ref[:64]}» i fristovervågningen.")
    require(may_open_case(session, user, case),
            "Du kan kun se sager, du selv er ansvarlig for, og sager i dit eget team.")
    ctx = context(request)
    now = ctx.clock()
    history = case_history(session, case, settings=ctx.settings, now=now)
    log_view(request, session, user, "sag", [case.ext_id])
    return page(request, "case.html", user=user, title=f"Sag {case.ext_id}", history=history, now=now,
                acks=history.acks, open_acks=history.open_acks(now), back=f"/sag/{quote(case.ext_id, safe='')}")
