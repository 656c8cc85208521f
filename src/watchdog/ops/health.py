"""Health, readiness and metrics over HTTP: /healthz, /readyz, /metrics.

I/O: the database (readiness and metrics) and an HTTP listener.

- ``/healthz``: the process is alive and serving (no database query: a database outage must not
  make an orchestrator kill and restart every replica in a loop).
- ``/readyz``: the database answers *and* the last successful poll round is younger than
  ``settings.http.ready_max_poll_age_seconds``. The poll time comes from the ``service_heartbeat``
  table: for ``watchdog run`` it is this replica's own; for ``watchdog serve`` (which does not poll)
  any replica's. 200 with a JSON body when ready, 503 with the reason when not.
- ``/metrics``: Prometheus text (see ``watchdog.ops.metrics``).

``watchdog run`` serves these on ``settings.http.health_port`` with ``start_health_server`` (a
small threaded stdlib server, so the daemon needs no ASGI stack); ``watchdog serve`` adds the same
routes to its FastAPI app with ``mount``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from watchdog.clock import utcnow
from watchdog.ops.metrics import CONTENT_TYPE, DatabaseCollector, exposition

log = logging.getLogger(__name__)

READY_DB_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str  # "ok" or the reason it is not
    last_poll_ok_at: str | None  # ISO 8601 UTC
    last_poll_age_seconds: float | None
    max_poll_age_seconds: int
    replica: str | None
    reason: str
    # Each configured source's state (watchdog.intake.sources): shown, never a reason for 503 (a
    # restart cannot fix an export that did not come; the silence raises an ops alert instead).
    sources: list[dict] = field(default_factory=list)
    # Cases whose deadlines cannot be computed (their rules raise): shown, not a reason to be
    # unready (the other cases are served; restarting would not help).
    failing_cases: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def check_ready(engine: Engine, settings, *, now: datetime, replica: str | None = None) -> Readiness:
    """Is the service ready? ``replica`` narrows the poll check to one replica's own rounds."""
    from watchdog.intake.sources.watch import source_overview
    from watchdog.ops.heartbeat import last_successful_poll

    from watchdog.db import NO_SCHEMA_HINT, is_schema_error
    from watchdog.deadline_marks import count_failures

    limit = settings.http.ready_max_poll_age_seconds
    try:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            last_ok = last_successful_poll(session, replica=replica)
            sources = [s.as_dict() for s in source_overview(session, settings, now=now)]
            failing = count_failures(session)
    except Exception as exc:
        reason = _one_line(exc)
        if is_schema_error(exc):  # the database answered: say so, and what to do
            return Readiness(False, "no schema", None, None, limit, replica,
                             f"database reachable, but {NO_SCHEMA_HINT} ({reason})")
        return Readiness(False, reason, None, None, limit, replica, f"database unreachable: {reason}")
    if last_ok is None:
        who = f"replica {replica}" if replica else "any replica"
        return Readiness(False, "ok", None, None, limit, replica, f"no successful poll yet by {who}", sources, failing)
    age = (now - last_ok).total_seconds()
    ready = age <= limit
    reason = "ready" if ready else f"last successful poll {age:.0f}s ago (limit {limit}s)"
    return Readiness(ready, "ok", last_ok.isoformat(), round(age, 3), limit, replica, reason, sources, failing)


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()
    return first[0] if first else type(exc).__name__


class HealthEndpoints:
    """The three endpoints as plain functions of a request path: (status, content type, body)."""

    def __init__(self, settings, engine: Engine, *, replica: str | None = None,
                 clock: Callable[[], datetime] = utcnow, db_collector: DatabaseCollector | None = None):
        self.settings = settings
        self.engine = engine
        self.replica = replica
        self.clock = clock
        self.db_collector = db_collector or DatabaseCollector(engine, clock=clock)

    def healthz(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"status":"alive"}\n'

    def readyz(self) -> tuple[int, str, bytes]:
        result = check_ready(self.engine, self.settings, now=self.clock(), replica=self.replica)
        body = json.dumps(result.as_dict(), ensure_ascii=False).encode() + b"\n"
        return (200 if result.ready else 503), "application/json", body

    def metrics(self) -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE, exposition(self.db_collector)

    def handle(self, path: str) -> tuple[int, str, bytes]:
        route = {"/healthz": self.healthz, "/readyz": self.readyz, "/metrics": self.metrics}.get(
            path.split("?", 1)[0].rstrip("/") or "/")
        if route is None:
            return 404, "application/json", b'{"error":"not found"}\n'
        return route()

    def close(self) -> None:
        self.db_collector.close()


class HealthServer:
    """A running health server; ``stop()`` shuts it down and frees the port."""

    def __init__(self, server: ThreadingHTTPServer | None, thread: threading.Thread | None,
                 endpoints: HealthEndpoints | None):
        self._server, self._thread, self.endpoints = server, thread, endpoints

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server else None

    @property
    def url(self) -> str | None:
        if not self._server:
            return None
        host = self._server.server_address[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self.endpoints.close()
            self._server = None

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_health_server(settings, engine: Engine, *, replica: str | None = None, port: int | None = None,
                        host: str | None = None, clock: Callable[[], datetime] = utcnow) -> HealthServer:
    """Serve /healthz, /readyz and /metrics in a daemon thread.

    ``port`` defaults to ``settings.http.health_port`` (0 there means: no server, a handle whose
    ``stop()`` does nothing); an explicit ``port=0`` picks a free port (tests).
    """
    chosen = settings.http.health_port if port is None else port
    if port is None and chosen == 0:
        log.info("health server off (http.health_port = 0)")
        return HealthServer(None, None, None)
    endpoints = HealthEndpoints(settings, engine, replica=replica, clock=clock)

    class Handler(BaseHTTPRequestHandler):
        server_version = "watchdog-health"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            try:
                status, ctype, body = endpoints.handle(self.path)
            except Exception:  # never let a bug in a probe kill the server thread
                log.exception("health endpoint %s failed", self.path)
                status, ctype, body = 500, "application/json", b'{"error":"internal"}\n'
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:  # probes every few seconds: DEBUG, not stderr
            log.debug("health %s", fmt % args)

    server = ThreadingHTTPServer((host or settings.http.host, chosen), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="health-http", daemon=True,
                              kwargs={"poll_interval": 0.5})
    thread.start()
    handle = HealthServer(server, thread, endpoints)
    log.info("health server on %s (/healthz, /readyz, /metrics)", handle.url)
    return handle


def mount(app, settings, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> HealthEndpoints:
    """Add /healthz, /readyz and /metrics to a FastAPI app (``watchdog serve``)."""
    from fastapi import Response

    endpoints = HealthEndpoints(settings, engine, replica=None, clock=clock)

    def _route(fn):
        # No return annotation: with postponed annotations FastAPI would have to resolve
        # "Response" in this module's globals to build /openapi.json, and it is imported here.
        def endpoint():
            status, ctype, body = fn()
            return Response(content=body, status_code=status, media_type=ctype,
                            headers={"Cache-Control": "no-store"})
        return endpoint

    # Plain (sync) endpoints: FastAPI runs them in its thread pool, so a slow database query
    # in a probe does not block the event loop.
    app.add_api_route("/healthz", _route(endpoints.healthz), methods=["GET"], tags=["ops"],
                      summary="Alive", include_in_schema=True, response_class=Response)
    app.add_api_route("/readyz", _route(endpoints.readyz), methods=["GET"], tags=["ops"],
                      summary="Ready: database reachable and a recent successful poll", response_class=Response,
                      responses={503: {"description": "Not ready: the reason is in the body"}})
    app.add_api_route("/metrics", _route(endpoints.metrics), methods=["GET"], tags=["ops"],
                      summary="Prometheus metrics", response_class=Response)
    return endpoints
