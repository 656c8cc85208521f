"""*Mine frister*: a caseworker's own deadlines; a leader or the head of unit may open anyone's they lead.

``GET /frister?pligt=…&fra=dd-mm-åååå&til=dd-mm-åååå[&medarbejder=W004]``: what can still be met,
soonest first, then the breaches; each row with its case link, paragraph, due time, time left,
status and the alerts sent about it. Every state has a URL; htmx only swaps the results.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from watchdog.casestore import Worker, WorkerRole
from watchdog.rules.types import Duty
from watchdog.web import forms
from watchdog.web.pages import log_view
from watchdog.web.queries import find_worker, worker_deadlines
from watchdog.web.render import page
from watchdog.web.session import CurrentUser, DbSession, Forbidden, WebUser, context

router = APIRouter(include_in_schema=False)


def may_see_worker(user: WebUser, worker) -> bool:
    if worker.id == user.worker_id or user.sees_everything:
        return True
    return user.role == WorkerRole.LEADER and worker.team_id is not None and worker.team_id == user.team_id


@router.get("/frister")
def my_deadlines(request: Request, user: CurrentUser, session: DbSession,
                 pligt: Annotated[list[str], Query()] = [], fra: str | None = None, til: str | None = None,
                 medarbejder: str | None = None):
    ctx = context(request)
    problems = forms.Problems()
    duties = forms.parse_duties(pligt, "pligt", problems)
    start = forms.parse_date(fra, "fra", "Fra-datoen", problems)
    end = forms.parse_date(til, "til", "Til-datoen", problems)
    due_from, due_to = forms.date_range(start, end, "til", problems)
    worker = session.get(Worker, user.worker_id)
    if medarbejder and medarbejder != user.ext_id:
        other = find_worker(session, medarbejder)
        if other is None:
            problems.add("medarbejder", f"Der er ingen medarbejder med id «{medarbejder[:40]}»")
        elif not may_see_worker(user, other):
            raise Forbidden("Du kan kun se frister for dig selv og for rådgivere i dit eget team.")
        else:
            worker = other
    data = worker_deadlines(session, worker, now=ctx.clock(), settings=ctx.settings, duties=duties,
                            due_from=due_from, due_to=due_to)
    log_view(request, session, user, "frister", data.case_refs)
    own = worker.id == user.worker_id
    return page(request, "frister.html", user=user, title="Mine frister" if own else f"Frister for {worker.name}",
                data=data, own=own, problems=problems, now=ctx.clock(), duties=list(Duty),
                chosen=[d.value for d in duties], fra=fra or "", til=til or "", medarbejder=medarbejder or "",
                acks=data.acks, back=request.url.path + (f"?{request.url.query}" if request.url.query else ""))
