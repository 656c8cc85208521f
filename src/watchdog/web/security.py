"""Security headers for the pages and the CSRF token of their forms. Pure ASGI; no database.

The Content-Security-Policy allows scripts, styles and images from the service itself only
(``script-src 'self'``): no inline script, no CDN, so an injected ``<script>`` cannot run even if
escaping ever failed. The API's /docs (Swagger UI) and /redoc pages need their inline bootstrap
script and styles, so they get a policy of their own (``DOCS_CSP``): inline allowed, but still
nothing from outside the service, so the ReDoc bundle's footer logo (``cdn.redoc.ly``) is never
fetched from a municipal network.

CSRF: a random token in the (signed) session, sent back by every form as ``csrf_token`` (or by
htmx as the ``X-CSRF-Token`` header); ``require_csrf`` refuses a POST without the right one.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
_DOCS_PAGES = ("/docs", "/redoc")  # Swagger UI / ReDoc bring their own inline bootstrap
_DOCS_HEADERS = [(b"content-security-policy", DOCS_CSP.encode()), *_HEADERS[1:]]


class SecurityHeaders:
    """Adds the headers above to every response (the API docs pages get ``DOCS_CSP``)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        added = _DOCS_HEADERS if scope["path"].startswith(_DOCS_PAGES) else _HEADERS

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in added if h[0] not in present)
                message["headers"] = headers
            await send(message)

        return await self.app(scope, receive, with_headers)


CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); every form carries it in a hidden field."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


class CsrfRefused(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=403, detail="csrf")


async def require_csrf(request: Request) -> None:
    """A dependency for every POST: the form's (or htmx header's) token must match the session's."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfRefused()
