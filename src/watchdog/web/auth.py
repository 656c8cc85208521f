"""Sign-in and sign-out: OpenID Connect (authorization code + PKCE) and the demo sign-in. I/O: HTTP, database.

OpenID Connect goes through Authlib's Starlette client: discovery from ``web.oidc_issuer``, a
``state``, a ``nonce`` and a PKCE ``code_verifier`` kept in the session, the code exchanged for
tokens at the provider, the ID token's signature and claims checked by Authlib. The claim named by
``web.oidc_claim`` (email, or the UPN in ``preferred_username``) is matched case-insensitively to an
active worker's email; without one the person sees a Danish "no access" page (403).

The demo sign-in lists the workers and signs in as the one chosen; it answers only when
``web.demo_login`` is on *and* the server socket is on loopback (settings refuse it otherwise too).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func
from sqlmodel import select

from watchdog.casestore import Worker, WorkerRole
from watchdog.settings_urls import is_loopback
from watchdog.web.render import page
from watchdog.web.security import require_csrf
from watchdog.web.session import DbSession, context, sign_in, user_of

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

_ROLE_ORDER = [WorkerRole.CASEWORKER, WorkerRole.LEADER, WorkerRole.HEAD, WorkerRole.ADMIN, WorkerRole.REVIEWER]


def make_oauth(settings):
    """Authlib's OAuth registry with the one provider, or None when OIDC is not configured."""
    web = settings.web
    if not web.oidc_issuer:
        return None
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    oauth.register(
        "oidc",
        client_id=web.oidc_client_id,
        client_secret=web.oidc_client_secret.get_secret_value() if web.oidc_client_secret else None,
        server_metadata_url=web.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": web.oidc_scopes, "code_challenge_method": "S256"},
    )
    return oauth


def demo_login_allowed(request: Request) -> bool:
    """On only when configured and the socket the request came in on is a loopback address."""
    server = request.scope.get("server") or ("", 0)
    return bool(context(request).settings.web.demo_login) and is_loopback(server[0])


def _safe_next(target: str | None) -> str | None:
    # Only a path on this site: never an absolute URL (an open redirect after sign-in).
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@router.get("/logind")
def login_page(request: Request, session: DbSession, next: str | None = None, udloebet: int = 0):
    ctx = context(request)
    if _safe_next(next):
        request.session["next"] = _safe_next(next)
    workers: list[tuple[str, list[Worker]]] = []
    if demo_login_allowed(request):
        rows = session.exec(select(Worker).where(Worker.active == True).order_by(Worker.ext_id)).all()
        for role in _ROLE_ORDER:
            of_role = [w for w in rows if w.role == role]
            if of_role:
                workers.append((user_of(of_role[0]).role_name, of_role))
    return page(request, "login.html", user=None, title="Log ind", oidc=ctx.oauth is not None,
                demo_workers=workers, expired=bool(udloebet))


@router.get("/logind/oidc")
async def login_oidc(request: Request):
    ctx = context(request)
    if ctx.oauth is None:
        return RedirectResponse("/logind", status_code=303)
    base = ctx.settings.web.base_url
    redirect_uri = f"{base}/logind/svar" if base else str(request.url_for("login_callback"))
    return await ctx.oauth.oidc.authorize_redirect(request, redirect_uri)


@router.get("/logind/svar", name="login_callback")
async def login_callback(request: Request, session: DbSession):
    from authlib.integrations.base_client.errors import OAuthError

    ctx = context(request)
    if ctx.oauth is None:
        return RedirectResponse("/logind", status_code=303)
    try:
        token = await ctx.oauth.oidc.authorize_access_token(request)
    except OAuthError as exc:
        log.warning("sign-in refused by the identity provider or the token check: %s", exc.error)
        return page(request, "no_access.html", user=None, title="Login mislykkedes", status_code=400,
                    reason="Login kunne ikke gennemføres. Prøv igen fra login-siden.")
    claims = token.get("userinfo") or {}
    claim = ctx.settings.web.oidc_claim
    value = claims.get(claim) or ""
    worker = None
    if isinstance(value, str) and "@" in value:
        worker = session.exec(select(Worker).where(
            func.lower(Worker.email) == value.strip().lower(), Worker.active == True)).first()
    if worker is None:
        log.info("sign-in without an active worker for claim %s", claim)
        request.session.clear()
        return page(request, "no_access.html", user=None, title="Ingen adgang", status_code=403,
                    reason=("Du er logget ind hos kommunens login, men der er ingen aktiv medarbejder i "
                            "fristovervågningen med din e-mailadresse. Kontakt din leder eller it-afdelingen, "
                            "hvis du skal have adgang."))
    return _signed_in(request, worker)


@router.post("/logind/demo")
async def login_demo(request: Request, session: DbSession, medarbejder: Annotated[str, Form()]):
    if not demo_login_allowed(request):  # before the CSRF check: say plainly that it is off
        return page(request, "no_access.html", user=None, title="Ingen adgang", status_code=403,
                    reason="Demo-login er slået fra på denne server.")
    await require_csrf(request)
    worker = session.exec(select(Worker).where(Worker.ext_id == medarbejder, Worker.active == True)).first()
    if worker is None:
        return page(request, "no_access.html", user=None, title="Ingen adgang", status_code=403,
                    reason=f"Der er ingen aktiv medarbejder med id {medarbejder}.")
    return _signed_in(request, worker)


def _signed_in(request: Request, worker: Worker) -> RedirectResponse:
    target = _safe_next(request.session.get("next"))
    sign_in(request, worker, context(request).clock())
    return RedirectResponse(target or user_of(worker).home(), status_code=303)


@router.post("/logud", dependencies=[Depends(require_csrf)])
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/logind", status_code=303)
