"""The page routers, one module per page group; ``watchdog.web.app`` includes ``ROUTERS`` in order.

Shared by the page modules: ``log_view`` (the access log entry of a view of case data).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request
from sqlmodel import Session

from watchdog.web.access_log import record_view
from watchdog.web.session import WebUser, context


def log_view(request: Request, session: Session, user: WebUser, page: str, case_refs: Iterable[str]) -> None:
    """Write the access-log row of this view (committed with the request's session)."""
    url = request.url
    record_view(session, worker_id=user.worker_id, worker_ext_id=user.ext_id, page=page,
                path=url.path + (f"?{url.query}" if url.query else ""), case_refs=case_refs,
                now=context(request).clock())


def _routers():
    from watchdog.web.pages import actions, admin, case, mine, preferences, reports, team

    # actions before team: /team/fravaer must not be taken for a team called "fravaer"
    return [mine.router, actions.router, team.router, case.router, reports.router, admin.router, preferences.router]


ROUTERS = _routers()
