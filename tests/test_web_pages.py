"""The web app's pages with a demo municipality: what each role sees, and that every view is logged."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select
from web_support import (
    Clock,
    build_demo,
    csrf_of,
    demo_server,
    make_client,
    sign_in_as,
    web_settings,
    worker_of,
)

from watchdog.casestore import WorkerRole
from watchdog.settings import load_settings
from watchdog.web.access_log import AccessLog, AccessLogCase


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


def _admin_and_head(engine):
    return worker_of(engine, WorkerRole.ADMIN), worker_of(engine, WorkerRole.HEAD)


def test_a_leader_sees_their_team_per_caseworker_and_clicks_through_to_one_caseworkers_list(client, demo):
    engine, _ = demo
    leader = worker_of(engine, WorkerRole.LEADER)
    sign_in_as(client, leader.ext_id)
    team = client.get("/team")
    assert team.status_code == 200 and "Sager pr. årsværk" in team.text
    assert "Fraværende til og med" in team.text  # the demo has caseworkers away today
    link = re.search(r'href="(/frister\?medarbejder=[^"]+)"', team.text).group(1)
    other = client.get(link)
    assert other.status_code == 200 and "Frister for" in other.text


def test_a_leader_cannot_open_another_teams_caseworker_or_team(client, demo):
    engine, _ = demo
    leader = worker_of(engine, WorkerRole.LEADER)
    with Session(engine) as session:
        from watchdog.casestore import Team, Worker
        stranger = session.exec(select(Worker).where(Worker.role == WorkerRole.CASEWORKER,
                                                     Worker.team_id != leader.team_id)).first()
        other_team = session.exec(select(Team).where(Team.id != leader.team_id)).first()
    sign_in_as(client, leader.ext_id)
    assert client.get(f"/frister?medarbejder={stranger.ext_id}").status_code == 403
    refused = client.get(f"/team/{other_team.ext_id}")
    assert refused.status_code == 403 and "Du kan kun se dit eget team" in refused.text


def test_the_head_of_unit_sees_every_team_and_any_case(client, demo):
    engine, _ = demo
    _, head = _admin_and_head(engine)
    sign_in_as(client, head.ext_id)
    teams = client.get("/team")
    assert teams.status_code == 200 and "Basisteam 1" in teams.text and "Basisteam 2" in teams.text
    assert client.get("/team/T2").status_code == 200


def test_the_case_page_shows_each_deadlines_history_and_alerts_and_is_logged(client, demo):
    engine, _ = demo
    from watchdog.casestore import Case
    from watchdog.deadlines import Deadline
    with Session(engine) as session:
        case = session.exec(select(Case).join(Deadline, Deadline.case_id == Case.id)).first()
    sign_in_as(client, worker_of(engine, WorkerRole.HEAD).ext_id)
    page = client.get(f"/sag/{case.ext_id}")
    assert page.status_code == 200
    assert "Hændelseslog for fristen" in page.text and "Påmindelser og varsler om fristen" in page.text
    with Session(engine) as session:
        logged = session.exec(select(AccessLogCase.case_ref).join(AccessLog, AccessLog.id == AccessLogCase.access_id)
                              .where(AccessLog.page == "sag")).all()
    assert logged == [case.ext_id]


def test_a_caseworker_cannot_open_a_case_they_are_not_responsible_for(client, demo):
    engine, _ = demo
    from watchdog.casestore import Case
    me = worker_of(engine, WorkerRole.CASEWORKER, 2)
    with Session(engine) as session:
        theirs = session.exec(select(Case).where(Case.worker_id != me.id, Case.team_id != me.team_id)).first()
    sign_in_as(client, me.ext_id)
    assert client.get(f"/sag/{theirs.ext_id}").status_code == 403
    assert client.get("/sag/NO-SUCH-CASE").status_code == 404


def test_the_barometer_page_shows_the_reports_tables_and_downloads_csv_and_xlsx(client, demo):
    engine, _ = demo
    sign_in_as(client, worker_of(engine, WorkerRole.HEAD).ext_id)
    page = client.get("/barometer?fra=01-01-2026&til=23-11-2026&team=T1")
    assert page.status_code == 200 and "Tabel 1." in page.text and "<svg" in page.text
    csv = client.get("/barometer.csv?fra=01-01-2026&til=23-11-2026&team=T1")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "Antal sager" in csv.content.decode("utf-8-sig")
    xlsx = client.get("/barometer.xlsx?fra=01-01-2026&til=23-11-2026")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_the_barometer_and_the_cli_give_the_same_numbers(client, demo, session):
    from web_support import NOW

    from watchdog.reports.barometer import Period, barometer_report
    from watchdog.reports.output import render
    engine, _ = demo
    sign_in_as(client, worker_of(engine, WorkerRole.HEAD).ext_id)
    web = client.get("/barometer.csv?fra=01-01-2026&til=23-11-2026").content.decode("utf-8-sig")
    direct = render(barometer_report(session, Period(date(2026, 1, 1), date(2026, 11, 23)), now=NOW,
                                     municipality="Kommune"), "csv")
    assert web == direct


def test_a_bad_period_or_team_on_the_barometer_is_a_danish_message(client, demo):
    engine, _ = demo
    sign_in_as(client, worker_of(engine, WorkerRole.LEADER).ext_id)
    page = client.get("/barometer?fra=10-10-2026&til=01-01-2026&team=NOPE")
    assert page.status_code == 200
    assert "Til-datoen ligger før fra-datoen" not in page.text or "Perioden slutter før" in page.text
    assert "Der er intet team med id «NOPE»" in page.text
    future = client.get("/barometer?fra=01-01-2030&til=02-01-2030")
    assert future.status_code == 200 and "Perioden må ikke begynde i fremtiden" in future.text
    assert client.get("/barometer.csv?fra=xx").status_code == 200  # the page with its message, not a file


def test_the_caseload_page_matches_the_caseload_report_and_downloads(client, demo):
    engine, _ = demo
    sign_in_as(client, worker_of(engine, WorkerRole.HEAD).ext_id)
    page = client.get("/sagstal")
    assert page.status_code == 200 and "Sager pr. årsværk" in page.text and "I alt" in page.text
    assert client.get("/sagstal.xlsx?team=T1").content[:2] == b"PK"
    assert "Der er intet team" in client.get("/sagstal?team=ZZ").text


def test_a_caseworker_is_refused_the_team_and_report_pages_in_danish(client, demo):
    engine, _ = demo
    sign_in_as(client, worker_of(engine, WorkerRole.CASEWORKER).ext_id)
    for path in ("/team", "/barometer", "/sagstal", "/drift", "/adgangslog"):
        answer = client.get(path)
        assert answer.status_code == 403 and "Ingen adgang" in answer.text, path


def test_the_ops_page_lists_dead_letters_and_retries_one_with_csrf(client, demo):
    engine, _ = demo
    from watchdog.outbox import Alert, AlertState
    with Session(engine) as session:
        alert = session.exec(select(Alert)).first()
        alert.state, alert.last_error = AlertState.DEAD, "550 mailbox unavailable"
        session.add(alert)
        session.commit()
        alert_id = alert.id
    admin, _ = _admin_and_head(engine)
    sign_in_as(client, admin.ext_id)
    page = client.get("/drift")
    assert page.status_code == 200 and "550 mailbox unavailable" in page.text
    assert client.post("/drift/genforsoeg", data={"alert_id": alert_id}).status_code == 403  # no CSRF token
    done = client.post("/drift/genforsoeg", data={"alert_id": alert_id, "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/drift?genforsoegt=1"
    with Session(engine) as session:
        assert session.get(Alert, alert_id).state == AlertState.PENDING


def test_admins_read_and_export_the_access_log_filtered_by_case(client, demo):
    engine, _ = demo
    caseworker = worker_of(engine, WorkerRole.CASEWORKER, 2)
    sign_in_as(client, caseworker.ext_id)
    shown = client.get("/frister").text
    ref = re.search(r'href="/sag/([^"]+)"', shown).group(1)
    client.post("/logud", data={"csrf_token": csrf_of(shown)})
    sign_in_as(client, _admin_and_head(engine)[0].ext_id)
    page = client.get(f"/adgangslog?sag={ref}")
    assert page.status_code == 200 and caseworker.ext_id in page.text
    exported = client.get(f"/adgangslog.csv?sag={ref}").content.decode("utf-8-sig")
    assert caseworker.ext_id in exported and ref in exported
    assert client.get("/adgangslog?sag=NOBODY-SAW-THIS").text.count("<td><code>") == 0


def test_a_session_idle_longer_than_the_timeout_must_sign_in_again(demo):
    engine, settings = demo
    clock = Clock()
    with make_client(engine, settings, clock) as c:
        sign_in_as(c, worker_of(engine, WorkerRole.CASEWORKER).ext_id)
        assert c.get("/frister").status_code == 200
        clock.now += timedelta(minutes=settings.web.idle_timeout_minutes - 1)
        assert c.get("/frister").status_code == 200  # a request renews the session
        clock.now += timedelta(minutes=settings.web.idle_timeout_minutes + 1)
        expired = c.get("/frister")
        assert expired.status_code == 303 and expired.headers["location"] == "/logind?udloebet=1"


def test_the_session_cookie_is_httponly_samesite_and_secure_by_default(engine, database_url):
    settings = web_settings(database_url, secure_cookies=True)
    with make_client(engine, settings) as c:
        cookie = c.get("/logind").headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" in cookie.lower()


def test_the_demo_sign_in_is_refused_when_it_is_switched_off(engine, database_url):
    build_demo(engine, web_settings(database_url))
    settings = load_settings(None, database_url=database_url)
    with make_client(engine, settings) as c:
        page = c.get("/logind")
        assert "Demo-login" not in page.text and "Login er ikke sat op" in page.text
        refused = c.post("/logind/demo", data={"medarbejder": "W004", "csrf_token": "any"})
    assert refused.status_code == 403 and "Demo-login er slået fra" in refused.text


def test_check_config_refuses_the_demo_sign_in_on_an_address_others_can_reach(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "watchdog.toml"
    config.write_text('[http]\nhost = "0.0.0.0"\n[web]\ndemo_login = true\n', encoding="utf-8")
    run = [sys.executable, "-m", "watchdog", "--config", str(config), "check-config"]
    refused = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "web.demo_login" in refused.stderr and "loopback" in refused.stderr
    assert "(root)" not in refused.stderr and "invalid configuration (in " in refused.stderr
    config.write_text('[http]\nhost = "127.0.0.1"\n[web]\ndemo_login = true\n', encoding="utf-8")
    assert subprocess.run(run, capture_output=True, text=True, timeout=120).returncode == 0


def test_demo_serve_serves_the_web_app_and_healthz_on_loopback_and_prints_whom_to_sign_in_as(demo_server):
    import urllib.request

    from web_support import _printed
    base, proc = demo_server
    printed = _printed(proc)
    assert f"{base}/logind" in printed
    for role in ("rådgiver", "teamleder", "afdelingsleder"):
        assert re.search(rf"^\s+{role}\s+W\d+\s", printed, re.MULTILINE), printed
    with urllib.request.urlopen(base + "/logind", timeout=10) as answer:
        assert answer.status == 200 and "Demo-login" in answer.read().decode()
