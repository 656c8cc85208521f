"""Acting from the web: "jeg er på sagen" on a deadline, and a leader's absences for the team.

- ``GET/POST /frist/{id}/paa-sagen``: the acknowledgement form (reason, end date) and its submit; a
  refused form comes back with a Danish error summary linking to each field (GOV.UK style).
- ``POST /markering/{id}/afslut``: end an acknowledgement early.
- ``GET/POST /team/fravaer``: register a team member's absence (from, to, substitute);
  ``POST /team/fravaer/{id}/afslut`` ends a web absence (imported ones are read-only).

Thin: the rules are in ``watchdog.acknowledgements`` and ``watchdog.absences``. Every form carries
the CSRF token; every page that shows case data is written to the access log. After a successful
post the reader goes back where they came from (``tilbage``, a path on this site only).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from watchdog import absences, acknowledgements
from watchdog.casestore import Case, Worker
from watchdog.clock import local_date
from watchdog.deadlines import Deadline
from watchdog.web import forms
from watchdog.web.pages import log_view
from watchdog.web.pages.case import may_open_case
from watchdog.web.queries import team_actions
from watchdog.web.render import page
from watchdog.web.security import require_csrf
from watchdog.web.session import CurrentUser, DbSession, WebUser, context, require

router = APIRouter(include_in_schema=False)

ACK_FIELDS = {"reason": "begrundelse", "ends_on": "slutdato", "deadline": "begrundelse", "ack": "begrundelse"}
ABSENCE_FIELDS = {"worker": "fravaer-medarbejder", "starts_on": "fravaer-fra", "ends_on": "fravaer-til",
                  "substitute": "fravaer-vikar", "absence": "fravaer-medarbejder"}


def back_to(target: str | None, default: str) -> str:
    """A path on this site to return to (never another host: an open redirect is a phishing aid)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _problems(errors: dict[str, str], ids: dict[str, str]) -> forms.Problems:
    problems = forms.Problems()
    for name, message in errors.items():
        problems.add(ids.get(name, name), message)
    return problems


def _deadline_and_case(session, user: WebUser, deadline_id: int):
    deadline = session.get(Deadline, deadline_id)
    case = session.get(Case, deadline.case_id) if deadline is not None else None
    require(case is not None and may_open_case(session, user, case),
            "Du kan kun markere frister i sager, du selv er ansvarlig for, og sager i dit eget team.")
    return deadline, case


def _ack_page(request: Request, session, user: WebUser, deadline, case, *, problems, reason: str, ends_on: str,
              tilbage: str, status_code: int = 200):
    ctx = context(request)
    now = ctx.clock()
    current = acknowledgements.list_acknowledgements(session, now=now, deadline_ids=[deadline.id])
    history = acknowledgements.list_acknowledgements(session, now=now, deadline_ids=[deadline.id], open_only=False)
    log_view(request, session, user, "jeg er på sagen", [case.ext_id])
    today = local_date(now)
    max_days = ctx.settings.alerts.ack_max_days
    from datetime import timedelta

    return page(request, "acknowledge.html", user=user, title=f"Jeg er på sagen: sag {case.ext_id}",
                status_code=status_code, deadline=deadline, case=case, problems=problems, reason=reason,
                ends_on=ends_on, tilbage=tilbage, current=current[0] if current else None, history=history,
                now=now, max_days=max_days, latest=today + timedelta(days=max_days), today=today)


@router.get("/frist/{deadline_id}/paa-sagen")
def acknowledge_form(request: Request, deadline_id: int, user: CurrentUser, session: DbSession,
                     tilbage: str | None = None):
    deadline, case = _deadline_and_case(session, user, deadline_id)
    return _ack_page(request, session, user, deadline, case, problems=forms.Problems(), reason="", ends_on="",
                     tilbage=back_to(tilbage, f"/sag/{quote(case.ext_id, safe='')}"))


@router.post("/frist/{deadline_id}/paa-sagen", dependencies=[Depends(require_csrf)])
def acknowledge_submit(request: Request, deadline_id: int, user: CurrentUser, session: DbSession,
                       begrundelse: Annotated[str, Form()] = "", slutdato: Annotated[str, Form()] = "",
                       tilbage: Annotated[str, Form()] = ""):
    ctx = context(request)
    deadline, case = _deadline_and_case(session, user, deadline_id)
    target = back_to(tilbage, f"/sag/{quote(case.ext_id, safe='')}")
    problems = forms.Problems()
    ends_on = forms.parse_date(slutdato, "slutdato", "Slutdatoen", problems)
    try:
        if problems:
            errors = acknowledgements.check_acknowledgement(begrundelse, None, today=local_date(ctx.clock()),
                                                            max_days=ctx.settings.alerts.ack_max_days)
            errors.pop("ends_on", None)
            raise acknowledgements.AcknowledgementRefused(errors)
        acknowledgements.acknowledge(session, deadline_id=deadline.id, worker_id=user.worker_id, reason=begrundelse,
                                     ends_on=ends_on, now=ctx.clock(), settings=ctx.settings)
    except acknowledgements.AcknowledgementRefused as refused:
        session.rollback()
        for e in _problems(refused.errors, ACK_FIELDS).errors:
            problems.add(e.field, e.message)
        return _ack_page(request, session, user, deadline, case, problems=problems, reason=begrundelse,
                         ends_on=slutdato, tilbage=target, status_code=400)
    session.commit()
    return RedirectResponse(target, status_code=303)


@router.post("/markering/{ack_id}/afslut", dependencies=[Depends(require_csrf)])
def end_acknowledgement(request: Request, ack_id: int, user: CurrentUser, session: DbSession,
                        tilbage: Annotated[str, Form()] = ""):
    ack = session.get(acknowledgements.Acknowledgement, ack_id)
    require(ack is not None, "Markeringen findes ikke.")
    deadline, case = _deadline_and_case(session, user, ack.deadline_id)
    try:
        acknowledgements.end_early(session, ack_id=ack_id, worker_id=user.worker_id, now=context(request).clock())
    except acknowledgements.AcknowledgementRefused as refused:
        session.rollback()
        return _ack_page(request, session, user, deadline, case, problems=_problems(refused.errors, ACK_FIELDS),
                         reason="", ends_on="", tilbage=back_to(tilbage, "/frister"), status_code=400)
    session.commit()
    return RedirectResponse(back_to(tilbage, f"/sag/{quote(case.ext_id, safe='')}"), status_code=303)


# --------------------------------------------------------------------------------------------
# Absences (team page)

def _team_of(session, user: WebUser, team_id: int | None):
    from watchdog.casestore import Team

    require(user.is_leader, "Fravær registreres af teamledere og afdelingsledere.")
    team = session.get(Team, team_id if team_id is not None else user.team_id) if (team_id or user.team_id) else None
    require(team is not None and (user.sees_everything or team.id == user.team_id), "Du kan kun se dit eget team.")
    return team


@router.get("/team/fravaer")
def absence_form(request: Request, user: CurrentUser, session: DbSession, team: int | None = None):
    found = _team_of(session, user, team)
    return _absence_page(request, session, user, found, problems=forms.Problems(), values={})


def _absence_page(request, session, user, team, *, problems, values, status_code=200):
    now = context(request).clock()
    log_view(request, session, user, "fravær", [])
    return page(request, "absence.html", user=user, title=f"Fravær: {team.name}", status_code=status_code,
                team=team, problems=problems, values=values, now=now,
                substitutes=absences.substitute_choices(session),
                **team_actions(session, team.id, now=now).context())


@router.post("/team/fravaer", dependencies=[Depends(require_csrf)])
def absence_submit(request: Request, user: CurrentUser, session: DbSession,
                   team: Annotated[int, Form()], medarbejder: Annotated[str, Form()] = "",
                   fra: Annotated[str, Form(alias="fravaer-fra")] = "",
                   til: Annotated[str, Form(alias="fravaer-til")] = "",
                   vikar: Annotated[str, Form()] = ""):
    found = _team_of(session, user, team)
    problems = forms.Problems()
    starts_on = forms.parse_date(fra, "fravaer-fra", "Første fraværsdag", problems)
    ends_on = forms.parse_date(til, "fravaer-til", "Sidste fraværsdag", problems)
    values = {"medarbejder": medarbejder, "fra": fra, "til": til, "vikar": vikar}

    def as_id(text: str) -> int | None:
        return int(text) if text.strip().isdigit() else None

    if not problems:
        try:
            absences.register_absence(session, leader_id=user.worker_id, worker_id=as_id(medarbejder),
                                      starts_on=starts_on, ends_on=ends_on, substitute_id=as_id(vikar),
                                      now=context(request).clock())
            session.commit()
            return RedirectResponse(f"/team/fravaer?team={found.id}", status_code=303)
        except absences.AbsenceRefused as refused:
            session.rollback()
            problems = _problems(refused.errors, ABSENCE_FIELDS)
    return _absence_page(request, session, user, found, problems=problems, values=values, status_code=400)


@router.post("/team/fravaer/{absence_id}/afslut", dependencies=[Depends(require_csrf)])
def absence_end(request: Request, absence_id: int, user: CurrentUser, session: DbSession,
                team: Annotated[int, Form()]):
    found = _team_of(session, user, team)
    try:
        absences.end_absence(session, leader_id=user.worker_id, absence_id=absence_id, now=context(request).clock())
    except absences.AbsenceRefused as refused:
        session.rollback()
        return _absence_page(request, session, user, found, problems=_problems(refused.errors, ABSENCE_FIELDS),
                             values={}, status_code=400)
    session.commit()
    return RedirectResponse(f"/team/fravaer?team={found.id}", status_code=303)
