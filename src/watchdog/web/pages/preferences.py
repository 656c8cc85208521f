"""*Indstillinger*: a worker's own settings: the calendar feed (create, copy, revoke; a team feed for
leaders) and the daily digest (one message a working day at a chosen hour, or a message each round).

``GET /indstillinger``; ``POST /indstillinger/kalender`` (make a new URL: shown once, to copy),
``POST /indstillinger/kalender/tilbagekald``, ``POST /indstillinger/oversigt``. Thin over
``watchdog.feeds.tokens`` and ``watchdog.reports.daily_digest``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from watchdog.casestore import WorkerRole
from watchdog.errors import WatchdogError
from watchdog.feeds import tokens
from watchdog.feeds.route import PATH
from watchdog.reports import daily_digest
from watchdog.web import forms
from watchdog.web.render import page
from watchdog.web.security import require_csrf
from watchdog.web.session import CurrentUser, DbSession, WebUser, context, require

router = APIRouter(include_in_schema=False)


def feed_url(request: Request, token: str) -> str:
    """The feed's absolute URL: the web app's public address when configured, else this request's."""
    base = context(request).settings.web.base_url or str(request.base_url).rstrip("/")
    return base + PATH.format(token=token)


def _page(request: Request, session, user: WebUser, *, problems=None, status_code=200, new=None):
    require(not user.is_admin, "It-drift har ingen frister; indstillingerne er for rådgivere og ledere.")
    return page(request, "preferences.html", user=user, title="Indstillinger", status_code=status_code,
                problems=problems or forms.Problems(), feeds=tokens.feed_tokens(session, user.worker_id),
                new_url=new, is_team_leader=user.role == WorkerRole.LEADER,
                digest_hour=daily_digest.daily_digest_hour(session, user.worker_id), hours=daily_digest.DIGEST_HOURS,
                horizon=daily_digest.HORIZON_DAYS)


@router.get("/indstillinger")
def preferences(request: Request, user: CurrentUser, session: DbSession):
    return _page(request, session, user)


@router.post("/indstillinger/kalender", dependencies=[Depends(require_csrf)])
def create_feed(request: Request, user: CurrentUser, session: DbSession,
                omfang: Annotated[str, Form()] = tokens.OWN):
    try:
        new = tokens.create_feed_token(session, worker_id=user.worker_id, scope=omfang, now=context(request).clock())
    except tokens.FeedRefused as refused:
        session.rollback()
        problems = forms.Problems()
        problems.add("kalender-ny", str(refused))
        return _page(request, session, user, problems=problems, status_code=400)
    session.commit()
    # Shown in this answer only (not through a redirect: the clear URL must not pass through the
    # session cookie or the browser history); a reload asks before posting again.
    return _page(request, session, user, new={"url": feed_url(request, new.token), "scope": omfang})


@router.post("/indstillinger/kalender/tilbagekald", dependencies=[Depends(require_csrf)])
def revoke_feed(request: Request, user: CurrentUser, session: DbSession,
                omfang: Annotated[str, Form()] = ""):
    tokens.revoke_feed_tokens(session, worker_id=user.worker_id, scope=omfang or None, now=context(request).clock())
    session.commit()
    return RedirectResponse("/indstillinger#kalender", status_code=303)


@router.post("/indstillinger/oversigt", dependencies=[Depends(require_csrf)])
def choose_digest(request: Request, user: CurrentUser, session: DbSession,
                  oversigt: Annotated[str, Form()] = "hver"):
    hour = None if oversigt in ("", "hver") else (int(oversigt) if oversigt.isdigit() else -1)
    try:
        daily_digest.set_daily_digest(session, worker_id=user.worker_id, hour=hour, now=context(request).clock())
    except WatchdogError as refused:
        session.rollback()
        problems = forms.Problems()
        problems.add("oversigt-hver", str(refused))
        return _page(request, session, user, problems=problems, status_code=400)
    session.commit()
    return RedirectResponse("/indstillinger#oversigt", status_code=303)
