"""Mounting the web app on the FastAPI app of ``watchdog serve``. I/O: none at mount time.

``mount(api, settings, engine)`` adds the session cookie, the security headers, the vendored static
files (htmx, CSS) under ``/static`` and one router per page group. The routers are listed in
``ROUTERS``: a new page group is one module in ``pages/`` and one line here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.middleware.sessions import SessionMiddleware

from watchdog.casestore import Worker
from watchdog.clock import utcnow
from watchdog.web.auth import make_oauth
from watchdog.web.auth import router as auth_router
from watchdog.web.pages import ROUTERS
from watchdog.web.render import page
from watchdog.web.security import CsrfRefused, SecurityHeaders
from watchdog.web.session import Forbidden, NotSignedIn, WebContext, user_of

log = logging.getLogger(__name__)

SESSION_COOKIE = "watchdog_session"


def mount(api: FastAPI, settings, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> WebContext:
    """Add the web app to ``api`` (call before the server starts); returns the shared context."""
    web = settings.web
    if web.session_secret is not None:
        secret = web.session_secret.get_secret_value()
    else:
        log.info("web.session_secret is not set: a random key for this process (sessions end at a restart)")
        secret = secrets.token_urlsafe(48)
    ctx = WebContext(settings=settings, engine=engine, clock=clock, oauth=make_oauth(settings))
    api.state.web = ctx
    # Middleware runs outermost-last-added: the headers wrap everything, the session sits inside them.
    # max_age is renewed with every response, so the cookie itself also expires after the idle time.
    api.add_middleware(SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE,
                       max_age=web.idle_timeout_minutes * 60, same_site="lax", https_only=web.secure_cookies)
    api.add_middleware(SecurityHeaders)
    static = resources.files("watchdog") / "static"
    api.mount("/static", StaticFiles(directory=str(static)), name="static")
    api.include_router(auth_router)
    for router in ROUTERS:
        api.include_router(router)
    api.add_api_route("/", _home, methods=["GET"], include_in_schema=False)
    api.add_exception_handler(NotSignedIn, _not_signed_in)
    api.add_exception_handler(Forbidden, _forbidden)
    api.add_exception_handler(CsrfRefused, _csrf_refused)
    return ctx


def _home(request: Request) -> RedirectResponse:
    return RedirectResponse("/frister" if request.session.get("worker_id") else "/logind", status_code=303)


def _not_signed_in(request: Request, exc: NotSignedIn):
    if request.method != "GET" or request.headers.get("HX-Request"):
        return page(request, "no_access.html", user=None, title="Log ind igen", status_code=401,
                    reason="Din session er udløbet. Log ind igen.")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    request.session["next"] = target
    return RedirectResponse("/logind" + ("?udloebet=1" if exc.expired else ""), status_code=303)


def _forbidden(request: Request, exc: Forbidden):
    # Signed in (the route checked): show the page frame with the person's own navigation.
    with Session(request.app.state.web.engine) as session:
        worker = session.get(Worker, request.session.get("worker_id"))
        user = user_of(worker) if worker is not None else None
    return page(request, "no_access.html", user=user, title="Ingen adgang", status_code=403, reason=exc.message)


def _csrf_refused(request: Request, exc: CsrfRefused):
    return page(request, "no_access.html", user=None, title="Formularen er udløbet", status_code=403,
                reason="Formularen var for gammel eller kom ikke fra denne side. Gå tilbage, genindlæs siden "
                       "og prøv igen.")


def service_app(settings, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The whole app of ``watchdog serve``: the ingest API, /healthz /readyz /metrics, the calendar
    feed (/ical/) and the web app."""
    from watchdog.feeds.route import mount as mount_feed
    from watchdog.intake.api import create_app
    from watchdog.ops.health import mount as mount_health

    api = create_app(settings, engine)
    mount_health(api, settings, engine, clock=clock)
    mount_feed(api, settings, engine, clock=clock)
    mount(api, settings, engine, clock=clock)
    return api
