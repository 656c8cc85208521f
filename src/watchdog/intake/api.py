"""Stage 1 intake over HTTP: upsert records in batches, read deadlines. I/O: database, network.

``create_app(settings, engine)`` builds the FastAPI app; ``watchdog serve`` runs it with uvicorn,
and the OPS routes (/healthz, /readyz, /metrics) are mounted on the same app by their module.

- ``POST /v1/{entity}`` (teams, workers, absences, cases, notifications, investigations,
  measures, follow_ups, visits): a JSON list of records in the documented format (ISO 8601
  instants with an offset). The same validation as the file import; all or nothing per request.
  200 with counts (created / updated / unchanged).
- ``GET /v1/deadlines``: the computed deadlines, filtered (status, duty, team, worker, due_from,
  due_to), ordered by due time.
- ``Authorization: Bearer <token>`` (``watchdog token create``); scope ``write`` to POST, ``read``
  to GET, checked before the body is read. Errors: 401 (missing / invalid / revoked token), 403
  (scope), 408 (the body stalled ``http.body_timeout_seconds``), 413 (body larger than
  ``intake.max_request_bytes`` or more than ``intake.max_batch_records`` records), 422 (problems,
  each ``{source, record, field, reason}``; ``record`` is the index in the posted list), 409 (a
  concurrent writer stored the same new records first; send again).
"""

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from watchdog import __version__
from watchdog.casestore import Case, Team, Worker
from watchdog.clock import utcnow
from watchdog.deadlines import Deadline
from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.schemas import ENTITIES, EntitySpec
from watchdog.intake.tokens import ApiToken, AuthFailure, Scope, authenticate
from watchdog.intake.upsert import IntakeConflict, ValidRecord, import_valid, problems_from_pydantic
from watchdog.rules.types import Duty, Regime, Status


class ProblemOut(BaseModel):
    source: str
    record: str
    field: str
    reason: str


class ErrorBody(BaseModel):
    detail: str
    reason: str | None = None  # for 401: missing, invalid or revoked
    problems: list[ProblemOut] = []


class BatchResult(BaseModel):
    entity: str
    received: int
    created: int
    updated: int
    unchanged: int
    cases_affected: int
    deadlines_recomputed: int | None
    # Implausible facts that were stored anyway (watchdog.intake.quality); `record` is the index.
    warnings: list[ProblemOut] = []


class DeadlineOut(BaseModel):
    id: int
    key: str
    duty: Duty
    regime: Regime
    citation: str
    case_ref: str
    team: str
    responsible_worker: str | None
    status: Status
    clock_start: datetime
    due: datetime
    met_at: datetime | None
    exception_reason: str | None
    municipal_policy: bool
    note: str | None


class Refused(HTTPException):
    """An HTTP error with a JSON body in the documented shape.

    An HTTPException so that FastAPI passes it through when it is raised while the body is read
    (the size limit) instead of turning it into a 400.
    """

    def __init__(self, status: int, detail: str, *, reason: str | None = None,
                 problems: list[Problem] = (), headers: dict[str, str] | None = None):
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.status = status
        self.body = ErrorBody(detail=detail, reason=reason,
                              problems=[ProblemOut(**p.as_dict()) for p in problems])

    def response(self) -> JSONResponse:
        return JSONResponse(self.body.model_dump(mode="json"), status_code=self.status, headers=self.headers)


_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_ERRORS = {
    401: {"model": ErrorBody, "description": "Missing, invalid or revoked token."},
    403: {"model": ErrorBody, "description": "The token lacks the scope."},
    413: {"model": ErrorBody, "description": "Body or batch too large."},
    422: {"model": ErrorBody, "description": "Refused records: every problem named; nothing stored."},
}


def authorize(engine: Engine, authorization: str | None, scope: Scope) -> ApiToken:
    """The token of a request that may use ``scope``; Refused (401, 403) otherwise."""
    try:
        with Session(engine) as session:
            token = authenticate(session, authorization)
    except AuthFailure as failure:
        raise Refused(401, failure.detail, reason=failure.reason,
                      headers={"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                   f'error_description="{failure.reason}"'}) from None
    if scope not in token.scope_set:
        raise Refused(403, f"token {token.prefix} lacks the {scope.value!r} scope (it has: {token.scopes})")
    return token


class TokenGate:
    """401/403 before a byte of the body is read or parsed.

    FastAPI reads and parses a body before it runs an endpoint's dependencies, so without this an
    unauthenticated client would get 422 (and learn the format) or 413 instead of 401. The token
    found is handed to the endpoint's dependency in the request state.
    """

    def __init__(self, app, engine: Engine, routes: dict[tuple[str, str], Scope]):
        self.app, self.engine, self.routes = app, engine, routes

    async def __call__(self, scope, receive, send):
        need = self.routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if need is None:
            return await self.app(scope, receive, send)
        raw = dict(scope.get("headers") or ()).get(b"authorization")
        try:
            token = await run_in_threadpool(authorize, self.engine, raw.decode("latin-1") if raw else None, need)
        except Refused as exc:
            return await exc.response()(scope, receive, send)
        scope.setdefault("state", {})["api_token"] = token
        await self.app(scope, receive, send)


class BodySizeLimit:
    """413 for a body above ``max_bytes``: by Content-Length at once, else while it streams in.
    408 for a body that stalls ``timeout`` seconds (uvicorn has no such limit of its own)."""

    def __init__(self, app, max_bytes: int, timeout: float = 30.0):
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = Refused(413, f"request body larger than {self.max_bytes} bytes "
                                 "(intake.max_request_bytes): send smaller batches")
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    return await too_large.response()(scope, receive, send)
            except ValueError:
                return await Refused(400, "invalid Content-Length").response()(scope, receive, send)
        seen = 0
        started = False
        body_done = False

        async def limited_receive():
            nonlocal seen, body_done
            if body_done:  # after the body only a disconnect can come: wait for it as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise Refused(408, f"the request body stalled for {self.timeout:g} s "
                                   "(http.body_timeout_seconds)") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise too_large
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Refused as exc:
            if started:
                raise
            await exc.response()(scope, receive, send)


def create_app(settings, engine: Engine) -> FastAPI:
    """The ingest API on ``engine``. Other stages may add routes (health, metrics) to it."""
    from watchdog.intake.docs import mount_docs

    app = FastAPI(
        title="watchdog intake API",
        version=__version__,
        description="Upsert case-system records (all or nothing per request) and read deadlines. "
                    "Authenticate with `Authorization: Bearer <token>` from `watchdog token create`.",
        docs_url=None, redoc_url=None,  # served by mount_docs from the package, not from a CDN
    )
    app.state.settings = settings
    app.state.engine = engine
    app.add_middleware(BodySizeLimit, max_bytes=settings.intake.max_request_bytes,
                       timeout=settings.http.body_timeout_seconds)
    # Added last, so it runs first: the token before the body's size or content.
    gated = {("POST", f"/v1/{name}"): Scope.WRITE for name in ENTITIES} | {("GET", "/v1/deadlines"): Scope.READ}
    app.add_middleware(TokenGate, engine=engine, routes=gated)
    app.add_exception_handler(Refused, lambda _req, exc: exc.response())
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    mount_docs(app)

    bearer = HTTPBearer(auto_error=False, description="A token from `watchdog token create`.")

    def token_with(scope: Scope):
        def check(request: Request, _credentials: Annotated[Any, Depends(bearer)]) -> ApiToken:
            token = getattr(request.state, "api_token", None)  # checked by TokenGate already
            if token is not None and scope in token.scope_set:
                return token
            return authorize(engine, request.headers.get("authorization"), scope)
        return check

    for spec in ENTITIES.values():
        app.add_api_route(
            f"/v1/{spec.name}", _upsert_endpoint(spec, settings, engine, token_with(Scope.WRITE)),
            methods=["POST"], response_model=BatchResult, responses={**_ERRORS, 409: {"model": ErrorBody}},
            summary=f"Upsert {spec.name.replace('_', '-')} by ext_id",
            description=(spec.model.__doc__ or "").strip() + " All or nothing per request.",
            tags=["intake"], operation_id=f"upsert_{spec.name}",
        )

    @app.get("/v1/deadlines", response_model=list[DeadlineOut], responses=_ERRORS, tags=["deadlines"],
             summary="Read computed deadlines")
    def deadlines(
        _token: Annotated[ApiToken, Depends(token_with(Scope.READ))],
        status: Annotated[list[Status] | None, Query(description="One or more statuses.")] = None,
        duty: Annotated[list[Duty] | None, Query(description="One or more duties.")] = None,
        team: Annotated[str | None, Query(max_length=64, pattern=_PRINTABLE, description="Team ext_id.")] = None,
        worker: Annotated[str | None, Query(max_length=64, pattern=_PRINTABLE,
                                            description="Responsible worker ext_id.")] = None,
        due_from: Annotated[str | None, Query(max_length=40, pattern=_PRINTABLE, description=_DUE_HELP.format(
            bound="at or after", day="its start"))] = None,
        due_to: Annotated[str | None, Query(max_length=40, pattern=_PRINTABLE, description=_DUE_HELP.format(
            bound="at or before", day="its end: the whole day is included"))] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> list[DeadlineOut]:
        lower = _due_bound("due_from", due_from, end_of_day=False)
        upper = _due_bound("due_to", due_to, end_of_day=True)
        return read_deadlines(engine, status=status, duty=duty, team=team, worker=worker,
                              due_from=lower, due_to=upper, limit=limit, offset=offset)

    return app


_DUE_HELP = ("Due {bound} this date or time: ISO 8601 (an offset, or Danish local time without one), "
             "dd-mm-yyyy or dd-mm-yyyy HH:MM. A bare date means {day}.")


def _due_bound(name: str, text: str | None, *, end_of_day: bool) -> datetime | None:
    """A due_from/due_to value, read as the CLI reads --due-from/--due-to."""
    from watchdog.timeinput import parse_time

    if text is None or not text.strip():
        return None
    try:
        return parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        problem = Problem("GET /v1/deadlines", "-", name, str(exc))
        raise Refused(422, "1 problem in the query", problems=[problem]) from None


def _upsert_endpoint(spec: EntitySpec, settings, engine: Engine, auth):
    model = spec.model
    source = f"POST /v1/{spec.name}"

    def upsert(records: Annotated[list[model], Body(description=f"A list of {spec.name}.")],  # type: ignore[valid-type]
               _token: Annotated[ApiToken, Depends(auth)], response: Response) -> BatchResult:
        limit = settings.intake.max_batch_records
        if len(records) > limit:
            raise Refused(413, f"{len(records)} records in one request; at most {limit} "
                               "(intake.max_batch_records): send smaller batches")
        valid = [ValidRecord(spec, source, str(i), r, frozenset(r.model_fields_set))
                 for i, r in enumerate(records)]
        try:
            result = import_valid(engine, valid, now=utcnow(), settings=settings)
        except ValidationFailed as exc:
            raise Refused(422, f"{len(exc.problems)} problem(s); nothing was stored",
                          problems=exc.problems) from None
        except IntakeConflict as exc:
            raise Refused(409, str(exc)) from None
        counts = result.counts[spec.name]
        # The batch's stages, for operators and the benchmark: writing (to its commit), the recompute.
        response.headers["Server-Timing"] = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in result.seconds.items())
        return BatchResult(entity=spec.name, received=len(records), created=counts.created,
                           updated=counts.updated, unchanged=counts.unchanged,
                           cases_affected=len(result.affected_case_ids),
                           deadlines_recomputed=result.deadlines_recomputed,
                           warnings=[ProblemOut(source=w.source, record=w.record, field=w.field, reason=w.message)
                                     for w in result.warnings])

    upsert.__name__ = f"upsert_{spec.name}"
    return upsert


async def _request_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own validation errors in the documented problem shape."""
    source = f"{request.method} {request.url.path}"
    spec = ENTITIES.get(request.url.path.rsplit("/", 1)[-1])
    problems: list[Problem] = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        where = loc.pop(0) if loc and loc[0] in ("body", "query", "path", "header") else "body"
        record = "-"
        if err.get("type") == "json_invalid":
            loc = []
        elif where == "body" and loc and isinstance(loc[0], int):
            record = str(loc.pop(0))
        if where != "body" or not loc:
            name = str(loc[0]) if loc else f"({where})"
            reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "json_invalid":
                reason = "the body is not valid JSON"
            problems.append(Problem(source, record, name, reason))
            continue
        problems.extend(problems_from_pydantic([{**err, "loc": tuple(loc)}], spec, source, record))
    # Only a refused write stores nothing; a refused read simply names what is wrong.
    tail = "; nothing was stored" if request.method in ("POST", "PUT", "PATCH", "DELETE") else " in the request"
    body = ErrorBody(detail=f"{len(problems)} problem(s){tail}",
                     problems=[ProblemOut(**p.as_dict()) for p in problems])
    return JSONResponse(json.loads(body.model_dump_json()), status_code=422)


_HTTP_REASONS = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Every other HTTP error (an unknown path, a wrong method, …) in the same documented shape."""
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
    elif exc.status_code == 405:
        allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow")
        detail = f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else "")
    else:
        detail = str(exc.detail)
    body = ErrorBody(detail=detail, reason=_HTTP_REASONS.get(exc.status_code))
    return JSONResponse(body.model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers)


def read_deadlines(engine: Engine, *, status=None, duty=None, team=None, worker=None, due_from=None,
                   due_to=None, limit: int = 100, offset: int = 0) -> list[DeadlineOut]:
    """Deadlines with their case reference, team and responsible worker, by due time."""
    responsible = aliased(Worker)
    query = (
        select(Deadline, Case.ext_id, Team.ext_id, responsible.ext_id)
        .join(Case, Case.id == Deadline.case_id)
        .join(Team, Team.id == Case.team_id)
        .outerjoin(responsible, responsible.id == Deadline.responsible_worker_id)
    )
    if status:
        query = query.where(Deadline.status.in_(status))
    if duty:
        query = query.where(Deadline.duty.in_(duty))
    if team:
        query = query.where(Team.ext_id == team)
    if worker:
        query = query.where(responsible.ext_id == worker)
    if due_from:
        query = query.where(Deadline.due >= due_from)
    if due_to:  # at or before, as `watchdog deadlines --due-to`: a date's end is its due instant
        query = query.where(Deadline.due <= due_to)
    query = query.order_by(Deadline.due, Deadline.id).offset(offset).limit(limit)
    with Session(engine) as session:
        rows = session.exec(query).all()
    return [
        DeadlineOut(id=d.id, key=d.key, duty=d.duty, regime=d.regime, citation=d.citation, case_ref=case_ref,
                    team=team_ref, responsible_worker=worker_ref, status=d.status, clock_start=d.clock_start,
                    due=d.due, met_at=d.met_at, exception_reason=d.exception_reason,
                    municipal_policy=d.municipal_policy, note=d.note)
        for d, case_ref, team_ref, worker_ref in rows
    ]
