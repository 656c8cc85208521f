"""The signed-in person and what each role may see. I/O: the database (the worker row), the session.

The session cookie (Starlette's ``SessionMiddleware``, signed with itsdangerous, HttpOnly, SameSite=Lax,
Secure) holds only the worker's id, the time of the last request and the CSRF token. Every request
reloads the worker, so a worker made inactive or given another role is out or changed at once. A
session idle for longer than ``web.idle_timeout_minutes`` ends (checked against the app's clock,
so tests control time by passing a clock in).

Roles: caseworker (and reviewer) their own deadlines and cases; leader their team; head everything;
admin the *Drift* and *Adgangslog* pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from watchdog.casestore import Worker, WorkerRole

ROLE_NAMES_DA = {
    WorkerRole.CASEWORKER: "rådgiver",
    WorkerRole.REVIEWER: "rådgiver (genvurdering)",
    WorkerRole.LEADER: "teamleder",
    WorkerRole.HEAD: "afdelingsleder",
    WorkerRole.ADMIN: "it-drift",
}


@dataclass
class WebContext:
    """What the routes share: settings, engine, the clock, the OIDC client (None without OIDC)."""

    settings: Any
    engine: Engine
    clock: Callable[[], datetime]
    oauth: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def context(request: Request) -> WebContext:
    return request.app.state.web


def db(request: Request) -> Iterator[Session]:
    """A session per request; committed when the route returns (the access log is written in it)."""
    with Session(context(request).engine) as session:
        yield session
        session.commit()


@dataclass(frozen=True)
class WebUser:
    worker_id: int
    ext_id: str
    name: str
    email: str
    role: WorkerRole
    team_id: int | None

    @property
    def role_name(self) -> str:
        return ROLE_NAMES_DA.get(self.role, str(self.role))

    @property
    def sees_everything(self) -> bool:
        return self.role == WorkerRole.HEAD

    @property
    def is_leader(self) -> bool:
        return self.role in (WorkerRole.LEADER, WorkerRole.HEAD)

    @property
    def is_admin(self) -> bool:
        return self.role == WorkerRole.ADMIN

    @property
    def has_own_cases(self) -> bool:
        return self.role in (WorkerRole.CASEWORKER, WorkerRole.REVIEWER, WorkerRole.LEADER)

    @property
    def sees_reports(self) -> bool:
        return self.role in (WorkerRole.LEADER, WorkerRole.HEAD)

    def home(self) -> str:
        if self.is_admin:
            return "/drift"
        if self.sees_everything or self.role == WorkerRole.LEADER:
            return "/team"
        return "/frister"


class NotSignedIn(Exception):
    """No (live) session: the page answers with a redirect to the sign-in page."""

    def __init__(self, expired: bool = False):
        self.expired = expired


class Forbidden(Exception):
    """Signed in, but this page is not for this role (a Danish page says so, 403)."""

    def __init__(self, message: str):
        self.message = message


def sign_in(request: Request, worker: Worker, now: datetime) -> None:
    """Start a fresh session for ``worker`` (a new session id against fixation: clear first)."""
    request.session.clear()
    request.session.update({"worker_id": worker.id, "seen": int(now.timestamp())})


def user_of(worker: Worker) -> WebUser:
    return WebUser(worker_id=worker.id, ext_id=worker.ext_id, name=worker.name, email=worker.email,
                   role=WorkerRole(worker.role), team_id=worker.team_id)


def current_user(request: Request, session: Annotated[Session, Depends(db)]) -> WebUser:
    """The signed-in, active worker; raises NotSignedIn (→ sign-in page) otherwise."""
    ctx = context(request)
    worker_id = request.session.get("worker_id")
    if worker_id is None:
        raise NotSignedIn()
    now = int(ctx.clock().timestamp())
    seen = int(request.session.get("seen", 0))
    if now - seen > ctx.settings.web.idle_timeout_minutes * 60:
        request.session.clear()
        raise NotSignedIn(expired=True)
    worker = session.get(Worker, worker_id)
    if worker is None or not worker.active:
        request.session.clear()
        raise NotSignedIn()
    request.session["seen"] = now
    return user_of(worker)


CurrentUser = Annotated[WebUser, Depends(current_user)]
DbSession = Annotated[Session, Depends(db)]


def require(condition: bool, message: str) -> None:
    if not condition:
        raise Forbidden(message)
