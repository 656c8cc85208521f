"""*Drift* and *Adgangslog*: for IT operations (role admin).

``GET /drift``: the outbox's counts, the dead letters with their last error and a retry button
(``POST /drift/genforsoeg``, CSRF-checked, the same ``outbox.retry`` as ``watchdog alerts retry``),
and each replica's last poll. ``GET /adgangslog``: who saw which case, filtered by case reference,
worker and dates; ``GET /adgangslog.csv`` exports the same rows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from watchdog.outbox import retry
from watchdog.web import forms
from watchdog.web.access_log import list_views, views_csv
from watchdog.web.pages import log_view
from watchdog.web.queries import ops_overview
from watchdog.web.render import page
from watchdog.web.security import require_csrf
from watchdog.web.session import CurrentUser, DbSession, context, require

router = APIRouter(include_in_schema=False)
_ADMINS_ONLY = "Siden er for it-drift (rollen admin)."


@router.get("/drift")
def ops(request: Request, user: CurrentUser, session: DbSession, genforsoegt: int | None = None):
    require(user.is_admin, _ADMINS_ONLY)
    overview = ops_overview(session)
    log_view(request, session, user, "drift", overview.case_refs)
    return page(request, "ops.html", user=user, title="Drift", overview=overview, retried=genforsoegt,
                now=context(request).clock())


@router.post("/drift/genforsoeg", dependencies=[Depends(require_csrf)])
def ops_retry(request: Request, user: CurrentUser, session: DbSession, alert_id: Annotated[int, Form()]):
    require(user.is_admin, _ADMINS_ONLY)
    n = retry(session, now=context(request).clock(), alert_ids=[alert_id])
    return RedirectResponse(f"/drift?genforsoegt={n}", status_code=303)


def _views(request: Request, session, sag, medarbejder, fra, til):
    problems = forms.Problems()
    start = forms.parse_date(fra, "fra", "Fra-datoen", problems)
    end = forms.parse_date(til, "til", "Til-datoen", problems)
    start_at, end_at = forms.date_range(start, end, "til", problems)
    rows = [] if problems else list_views(session, case_ref=sag or None, worker_ext_id=medarbejder or None,
                                          start=start_at, end=end_at, limit=None if request.url.path.endswith(".csv") else 500)
    return problems, rows


@router.get("/adgangslog")
def access_log(request: Request, user: CurrentUser, session: DbSession, sag: str = "", medarbejder: str = "",
               fra: str = "", til: str = ""):
    require(user.is_admin, _ADMINS_ONLY)
    problems, rows = _views(request, session, sag, medarbejder, fra, til)
    return page(request, "access_log.html", user=user, title="Adgangslog", rows=rows, problems=problems,
                sag=sag, medarbejder=medarbejder, fra=fra, til=til, query=request.url.query)


@router.get("/adgangslog.csv")
def access_log_csv(request: Request, user: CurrentUser, session: DbSession, sag: str = "", medarbejder: str = "",
                   fra: str = "", til: str = ""):
    require(user.is_admin, _ADMINS_ONLY)
    problems, rows = _views(request, session, sag, medarbejder, fra, til)
    if problems:
        return access_log(request, user, session, sag, medarbejder, fra, til)
    return Response(("\ufeff" + views_csv(rows)).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="adgangslog.csv"',
                             "Cache-Control": "no-store"})
