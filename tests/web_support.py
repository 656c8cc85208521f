"""Helpers for the web app's tests: a demo municipality in the test database and a signed-in client.

Not a conftest: the web tests import what they use, so the rest of the suite stays as it was.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import count

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from watchdog.casestore import Worker, WorkerRole
from watchdog.demo_data import Scale, generate, populate
from watchdog.settings import load_settings

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SMALL = Scale(cases=160, caseworkers=6)


class Clock:
    """The app's clock, moved by the test (never by sleeping)."""

    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def web_settings(database_url: str, **web):
    return load_settings(None, database_url=database_url,
                         web={"demo_login": True, "secure_cookies": False, **web})


def build_demo(engine, settings, *, now: datetime = NOW, seed: int = 11, scale: Scale = SMALL) -> None:
    """The demo municipality in ``engine``, with its deadlines computed and alerts planned."""
    from watchdog.service import poll

    with Session(engine) as session:
        populate(session, generate(seed, now, scale))
        session.commit()
    poll(engine, settings, now=now)


def make_client(engine, settings, clock: Clock | None = None) -> TestClient:
    from watchdog.web.app import service_app

    app = service_app(settings, engine, clock=clock or Clock())
    # The demo sign-in answers only on a loopback socket: the client's "server" is 127.0.0.1.
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in_as(client: TestClient, ext_id: str):
    page = client.get("/logind")
    return client.post("/logind/demo", data={"medarbejder": ext_id, "csrf_token": csrf_of(page.text)})


def worker_of(engine, role: WorkerRole, n: int = 0) -> Worker:
    with Session(engine) as session:
        return session.exec(select(Worker).where(Worker.role == role).order_by(Worker.ext_id)).all()[n]
