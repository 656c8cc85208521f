"""The ingest API end to end: a real uvicorn server on a free port, requests with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, settings as hsettings
from sqlalchemy import func
from sqlmodel import Session, select

import schemathesis  # noqa: E402
from watchdog.casestore import Case, Notification, Team
from watchdog.intake.api import create_app
from watchdog.intake.tokens import create_token, revoke_token
from watchdog.settings import load_settings

NOW = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:  # waiting for a real server to bind, not controlling time
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def api(engine) -> Iterator[tuple[str, dict[str, str]]]:
    """A running server on the test database, and tokens: write+read, read-only, revoked."""
    settings = load_settings(None, intake={"max_request_bytes": 20_000, "max_batch_records": 50})
    with Session(engine) as s:
        tokens = {
            "write": create_token(s, name="case system", scopes={"write", "read"}, now=NOW).token,
            "read": create_token(s, name="dashboard", scopes={"read"}, now=NOW).token,
            "revoked": create_token(s, name="old", scopes={"write"}, now=NOW),
        }
        revoke_token(s, tokens["revoked"].record.prefix, now=NOW)
        tokens["revoked"] = tokens["revoked"].token
        s.commit()
    with Server(create_app(settings, engine)) as server:
        yield server.url, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count(engine, table) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(table)).one()


def test_a_batch_is_upserted_and_re_posting_it_changes_nothing(engine, api):
    url, tokens = api
    teams = [{"ext_id": "T1", "name": "Team 1"}]
    cases = [{"ext_id": "S-1", "team": "T1", "opened_at": "2024-11-01T10:00:00+01:00"}]
    notes = [{"ext_id": "U-1", "case": "S-1", "received_at": "2024-11-01T09:30:00+01:00"}]
    with httpx.Client(base_url=url, headers=bearer(tokens["write"])) as c:
        assert c.post("/v1/teams", json=teams).json()["created"] == 1
        assert c.post("/v1/cases", json=cases).json()["created"] == 1
        first = c.post("/v1/notifications", json=notes)
        assert first.status_code == 200 and first.json()["created"] == 1
        again = c.post("/v1/notifications", json=notes).json()
        assert again["unchanged"] == 1 and again["cases_affected"] == 0
        deadlines = c.get("/v1/deadlines", params={"duty": "assessment_24h", "team": "T1"}).json()
    assert [d["case_ref"] for d in deadlines] == ["S-1"]
    assert deadlines[0]["due"].startswith("2024-11-02T08:30:00")  # received + 24 h, in UTC


def test_a_refused_batch_stores_nothing_and_names_each_record_and_field(engine, api):
    url, tokens = api
    with httpx.Client(base_url=url, headers=bearer(tokens["write"])) as c:
        c.post("/v1/teams", json=[{"ext_id": "T1", "name": "Team 1"}])
        body = [
            {"ext_id": "S-1", "team": "T1", "opened_at": "2024-11-01T10:00:00+01:00"},
            {"ext_id": "S-2", "team": "T-unknown", "opened_at": "2024-11-01T10:00:00+01:00"},
            {"ext_id": "S-3", "team": "T1", "opened_at": "2024-11-01T10:00:00", "barn_navn": "x"},
        ]
        refused = c.post("/v1/cases", json=body)
    assert refused.status_code == 422
    problems = {(p["record"], p["field"]) for p in refused.json()["problems"]}
    # Malformed records are named first; references are checked once every record is well formed.
    assert problems == {("2", "opened_at"), ("2", "barn_navn")}
    assert all(p["source"] == "POST /v1/cases" and p["reason"] for p in refused.json()["problems"])
    with httpx.Client(base_url=url, headers=bearer(tokens["write"])) as c:
        body[2] = {"ext_id": "S-3", "team": "T1", "opened_at": "2024-11-01T10:00:00Z"}
        refused = c.post("/v1/cases", json=body)
    assert refused.status_code == 422
    assert [(p["record"], p["field"]) for p in refused.json()["problems"]] == [("1", "team")]
    assert "T-unknown" in refused.json()["problems"][0]["reason"]
    assert count(engine, Case) == 0


def test_tokens_missing_invalid_revoked_and_read_only_get_clear_401_and_403(engine, api):
    url, tokens = api
    teams = [{"ext_id": "T1", "name": "Team 1"}]
    with httpx.Client(base_url=url) as c:
        missing = c.post("/v1/teams", json=teams)
        invalid = c.post("/v1/teams", json=teams, headers=bearer(tokens["write"][:-2] + "xx"))
        revoked = c.post("/v1/teams", json=teams, headers=bearer(tokens["revoked"]))
        read_only = c.post("/v1/teams", json=teams, headers=bearer(tokens["read"]))
        reading = c.get("/v1/deadlines", headers=bearer(tokens["read"]))
    assert [r.status_code for r in (missing, invalid, revoked)] == [401, 401, 401]
    assert [r.json()["reason"] for r in (missing, invalid, revoked)] == ["missing", "invalid", "revoked"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert read_only.status_code == 403 and "'write' scope" in read_only.json()["detail"]
    assert reading.status_code == 200
    assert count(engine, Team) == 0


def test_too_large_bodies_and_batches_get_413_by_header_and_while_streaming(engine, api):
    url, tokens = api
    big = [{"ext_id": f"T{i}", "name": "x" * 150} for i in range(200)]
    many = [{"ext_id": f"T{i}", "name": "x"} for i in range(51)]

    def stream():  # no Content-Length: the limit must hold while the body streams in
        yield b"["
        for i in range(400):
            yield b'{"ext_id": "T%d", "name": "%s"},' % (i, b"x" * 100)
        yield b'{"ext_id": "last", "name": "x"}]'

    with httpx.Client(base_url=url, headers=bearer(tokens["write"])) as c:
        by_header = c.post("/v1/teams", json=big)
        streamed = c.post("/v1/teams", content=stream(), headers={"content-type": "application/json"})
        too_many = c.post("/v1/teams", json=many)
    assert by_header.status_code == 413 and "max_request_bytes" in by_header.json()["detail"]
    assert streamed.status_code == 413
    assert too_many.status_code == 413 and "max_batch_records" in too_many.json()["detail"]
    assert count(engine, Team) == 0


def test_openapi_and_docs_are_published(api):
    url, _tokens = api
    with httpx.Client(base_url=url) as c:
        spec = c.get("/openapi.json").json()
        docs = c.get("/docs")
    assert {"/v1/cases", "/v1/follow_ups", "/v1/deadlines"} <= set(spec["paths"])
    assert docs.status_code == 200


def test_the_api_keeps_its_own_openapi_contract(api):
    """Schemathesis generates requests for every operation from the published OpenAPI document;
    every response must be a documented status with a body matching its schema, never a 500.

    One check is left out: "schema-valid data is accepted". A schema cannot say that a team
    referred to by ext_id must exist or that a value must not hold a CPR number; refusing such
    records with 422 is the point of the API.
    """
    from hypothesis import given
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    url, tokens = api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:
        @given(case=operation.as_strategy())
        @hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(base_url=url, headers=bearer(tokens["write"]),
                                   excluded_checks=[positive_data_acceptance])

        check()


def test_an_implausible_fact_is_stored_and_answered_as_a_warning_naming_record_and_field(engine, api):
    url, tokens = api
    with httpx.Client(base_url=url, headers=bearer(tokens["write"])) as c:
        c.post("/v1/teams", json=[{"ext_id": "T1", "name": "Team 1"}])
        c.post("/v1/cases", json=[{"ext_id": "S-1", "team": "T1", "opened_at": "2024-11-01T10:00:00+01:00"}])
        answer = c.post("/v1/notifications", json=[
            {"ext_id": "U-1", "case": "S-1", "received_at": "2024-11-01T09:30:00+01:00"},
            {"ext_id": "U-2", "case": "S-1", "received_at": "2024-11-05T09:30:00+01:00",
             "assessed_at": "2024-11-04T15:00:00+01:00"}])
    assert answer.status_code == 200 and answer.json()["created"] == 2
    assert [(w["record"], w["field"]) for w in answer.json()["warnings"]] == [("1", "assessed_at")]
    assert "før den blev modtaget" in answer.json()["warnings"][0]["reason"]
