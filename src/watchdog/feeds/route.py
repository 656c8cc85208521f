"""``GET /ical/{token}.ics``: the calendar feed on the serve app. I/O: database, network.

Thin: the token says whose feed it is (``feeds.tokens.feed_owner``), ``feeds.ical`` builds it.
An unknown, revoked or no longer valid token is a plain 404 (it says nothing about why). The path
holds the secret, so the access log of a reverse proxy in front must not keep paths under
/ical/ (watchdog's own log lines mask it, see ``watchdog.ops.logs``).
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from sqlalchemy.engine import Engine
from sqlmodel import Session

from watchdog.clock import utcnow
from watchdog.feeds import ical
from watchdog.feeds.tokens import TEAM, feed_owner

PATH = "/ical/{token}.ics"


def feed_response(engine: Engine, settings, token: str, *, now) -> Response:
    """The feed of ``token`` as ``text/calendar``, or 404."""
    with Session(engine) as session:
        found = feed_owner(session, token)
        if found is None:
            raise HTTPException(status_code=404, detail="Not Found")
        record, worker = found
        team = record.scope == TEAM
        if team:
            items = ical.load_feed_items(session, settings, team_id=worker.team_id)
            name = f"Frister – team ({worker.name})"
        else:
            items = ical.load_feed_items(session, settings, worker_id=worker.id)
            name = f"Frister – {worker.name}"
        _log_view(session, worker, record, items, now=now)
    body = ical.build_calendar(items, name=name, now=now, domain=ical.uid_domain(settings), team_feed=team)
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300", "X-Robots-Tag": "noindex",
                             "Content-Disposition": 'inline; filename="frister.ics"'})


def _log_view(session: Session, worker, record, items, *, now) -> None:
    """A feed fetch shows case references: a view of case data, so it is in the access log (the
    path without the token, which is a credential)."""
    from watchdog.web.access_log import record_view

    record_view(session, worker_id=worker.id, worker_ext_id=worker.ext_id, page=f"kalender ({record.scope})",
                path=f"/ical/{record.prefix}…", case_refs=[i.case_ref for i in items], now=now)
    session.commit()


def mount(app: FastAPI, settings, engine: Engine, *, clock=utcnow) -> None:
    """Add the feed route to the serve app (hidden from the API's OpenAPI document)."""

    @app.get(PATH, include_in_schema=False)
    def calendar_feed(token: str) -> Response:
        return feed_response(engine, settings, token, now=clock())
