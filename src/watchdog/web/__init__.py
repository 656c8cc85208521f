"""The web app: pages for caseworkers, leaders, the head of unit and IT operations. I/O: HTTP, database.

Server-rendered Danish pages on the FastAPI app of ``watchdog serve`` (``mount``), read through the
same query functions as the CLI, the API and the digest; routes stay thin. The package is a room of
its own: it calls the stages, never the other way round.

- ``app``: ``mount(api, settings, engine)`` adds middleware, static files and the page routers.
- ``security``: security headers (a strict Content-Security-Policy), the CSRF token for forms.
- ``session``: the signed-in person (``current_user``), roles and what each may see; idle timeout.
- ``auth``: sign-in by OpenID Connect (authorization code + PKCE, Authlib), the demo sign-in, sign-out.
- ``access_log``: every view of case data (who, when, which page, which case references).
- ``queries``: what the pages show, as plain functions over a session (the benchmark calls them too).
- ``forms``: Danish parsing of a page's filters (a bad filter is a message on the page, never a 500).
- ``render``: one ``page()`` helper over the shared template environment (``templates/web/``).
- ``pages/``: one router module per page group.
"""

from watchdog.web.app import mount

__all__ = ["mount"]
