"""The web app's pages with a demo municipality: what each role sees, and that every view is logged."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from watchdog.casestore import WorkerRole
from watchdog.web.access_log import AccessLog, AccessLogCase
from web_support import Clock, build_demo, make_client, sign_in_as, web_settings, worker_of


@pytest.fixture
def demo(engine, database_url):
    settings = web_settings(database_url)
    build_demo(engine, settings)
    return engine, settings


@pytest.fixture
def client(demo):
    engine, settings = demo
    with make_client(engine, settings) as c:
        yield c


def test_a_caseworker_signs_in_and_sees_their_own_deadlines_soonest_first(client, demo):
    engine, _ = demo
    caseworker = worker_of(engine, WorkerRole.CASEWORKER, 2)
    answer = sign_in_as(client, caseworker.ext_id)
    assert answer.status_code == 303 and answer.headers["location"] == "/frister"
    page = client.get("/frister")
    assert page.status_code == 200
    assert '<html lang="da">' in page.text
    assert "Kan stadig nås" in page.text and "Overskredet" in page.text
    assert caseworker.name in page.text


def test_every_view_of_a_deadline_list_is_in_the_access_log_with_its_case_references(client, demo):
    engine, _ = demo
    caseworker = worker_of(engine, WorkerRole.CASEWORKER, 2)
    sign_in_as(client, caseworker.ext_id)
    page = client.get("/frister")
    with Session(engine) as session:
        views = session.exec(select(AccessLog)).all()
        assert [(v.worker_ext_id, v.page, v.path) for v in views] == [(caseworker.ext_id, "frister", "/frister")]
        refs = set(session.exec(select(AccessLogCase.case_ref)).all())
    assert refs and all(ref in page.text for ref in refs)
    assert views[0].cases == len(refs)


def test_a_bad_date_in_the_address_is_a_danish_message_on_the_page_not_an_error(client, demo):
    engine, _ = demo
    sign_in_as(client, worker_of(engine, WorkerRole.CASEWORKER).ext_id)
    page = client.get("/frister?fra=31-02-2026&pligt=nonsense&til=banan")
    assert page.status_code == 200
    assert "Der er et problem" in page.text
    assert 'href="#fra"' in page.text and "findes ikke i kalenderen" in page.text
    assert "Ukendt pligt" in page.text and "dd-mm-åååå" in page.text


def test_a_page_without_a_session_sends_the_reader_to_the_sign_in_page(client):
    answer = client.get("/frister?pligt=plan")
    assert answer.status_code == 303 and answer.headers["location"] == "/logind"


def test_pages_carry_a_strict_content_security_policy(client):
    page = client.get("/logind")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
