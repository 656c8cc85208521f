"""Helpers for the web app's tests: a demo municipality in the test database and a signed-in client.

Not a conftest: the web tests import what they use, so the rest of the suite stays as it was.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """``watchdog demo --serve`` as a real process; yields (base URL, its printed output so far)."""
    out = tmp_path_factory.mktemp("demo")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")} | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "demo", "--serve", "--port", str(port), "--seed", "7",
         "--cases", "240", "--caseworkers", "8", "--now", "2026-11-23T09:00+01:00", "--out", str(out / "d")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=out)
    base = f"http://127.0.0.1:{port}"
    proc.lines = []
    reader = threading.Thread(target=lambda: proc.lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise AssertionError(f"demo --serve ended: {_printed(proc)}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("demo --serve did not answer /healthz")
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _printed(proc) -> str:
    return "".join(proc.lines)
