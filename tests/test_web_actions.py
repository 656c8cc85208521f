"""Acting from the web (TestClient against the real app): "jeg er på sagen" on Mine frister, Team
and Sag with CSRF and Danish error summaries; absences on the team page; the settings page's
calendar URL and daily-digest choice."""

from __future__ import annotations

import re
from datetime import date

import icalendar
import pytest
from conftest import at
from sqlmodel import Session, select
from test_alerts_e2e import Town
from web_support import Clock, csrf_of, make_client, sign_in_as, web_settings

from watchdog.acknowledgements import Acknowledgement
from watchdog.casestore import Absence
from watchdog.deadlines import Deadline
from watchdog.reports.daily_digest import daily_digest_hour
from watchdog.rules.types import Status
from watchdog.service import poll

NOW = at("2025-07-08T10:00")  # Town's investigation is breached since the end of 4 July


@pytest.fixture
def town(engine, session, database_url):
    town = Town(session)
    town.investigation("S-8001")
    town.investigation("S-8002", worker="W3")
    session.add(Absence(ext_id="IMP-1", worker_id=town.workers["W3"].id, starts_on=date(2025, 7, 7),
                        ends_on=date(2025, 7, 11)))
    session.commit()
    settings = web_settings(database_url)
    poll(engine, settings, now=NOW)
    return town, settings


@pytest.fixture
def client(engine, town):
    _town, settings = town
    with make_client(engine, settings, Clock(NOW)) as c:
        yield c


def _breach(engine, ref="S-8001") -> Deadline:
    from watchdog.casestore import Case

    with Session(engine) as s:
        return s.exec(select(Deadline).join(Case, Case.id == Deadline.case_id).where(
            Case.ext_id == ref, Deadline.status == Status.BREACHED)).one()


def test_a_caseworker_acknowledges_a_breach_from_mine_frister_and_a_bad_form_says_what_to_fix(client, engine):
    sign_in_as(client, "W1")
    listing = client.get("/frister")
    deadline = _breach(engine)
    assert f'href="/frist/{deadline.id}/paa-sagen?tilbage=/frister"' in listing.text
    assert "En lovbestemt frist kan ikke sættes på pause" in listing.text
    form = client.get(f"/frist/{deadline.id}/paa-sagen?tilbage=/frister")
    assert form.status_code == 200 and "kan ikke sættes på pause" in form.text
    token = csrf_of(form.text)
    url = f"/frist/{deadline.id}/paa-sagen"
    assert client.post(url, data={"begrundelse": "x", "slutdato": "10-07-2025"}).status_code == 403  # no CSRF
    refused = client.post(url, data={"csrf_token": token, "begrundelse": "Barnet 010203-1234",
                                     "slutdato": "07-07-2025", "tilbage": "/frister"})
    assert refused.status_code == 400 and "Der er et problem" in refused.text
    assert 'href="#begrundelse"' in refused.text and "CPR-nummer" in refused.text
    assert 'href="#slutdato"' in refused.text and "overskredet" in refused.text
    assert "010203-1234" in refused.text  # the reader sees what they typed, to fix it
    too_far = client.post(url, data={"csrf_token": token, "begrundelse": "Venter på skolen",
                                     "slutdato": "31-07-2025", "tilbage": "/frister"})
    assert too_far.status_code == 400 and "senest 22-07-2025" in too_far.text
    done = client.post(url, data={"csrf_token": token, "begrundelse": "Venter på skolen", "slutdato": "15-07-2025",
                                  "tilbage": "https://evil.example/"})
    assert done.status_code == 303 and done.headers["location"].startswith("/sag/")  # never another host
    with Session(engine) as s:
        ack = s.exec(select(Acknowledgement)).one()
        assert ack.reason == "Venter på skolen" and ack.ends_on == date(2025, 7, 15)
    listing = client.get("/frister")
    assert "Anne Rådgiver er på sagen til og med 15-07-2025" in listing.text
    case_page = client.get("/sag/S-8001")
    assert "Venter på skolen" in case_page.text and "Jeg er på sagen" in case_page.text


def test_a_leader_sees_open_acknowledgements_on_the_team_page_and_ends_one_early(client, engine, town):
    t, settings = town
    deadline = _breach(engine)
    with Session(engine) as s:
        from watchdog.acknowledgements import acknowledge

        acknowledge(s, deadline_id=deadline.id, worker_id=t.workers["W1"].id, reason="Møde med familien",
                    ends_on=date(2025, 7, 14), now=NOW, settings=settings)
        s.commit()
    sign_in_as(client, "L1")
    team = client.get("/team")
    assert "Åbne markeringer i teamet" in team.text and "Møde med familien" in team.text
    ack_id = re.search(r'action="/markering/(\d+)/afslut"', team.text).group(1)
    ended = client.post(f"/markering/{ack_id}/afslut", data={"csrf_token": csrf_of(team.text), "tilbage": "/team"})
    assert ended.status_code == 303 and ended.headers["location"] == "/team"
    with Session(engine) as s:
        assert s.exec(select(Acknowledgement)).one().ended_by_id == t.workers["L1"].id
    assert "Møde med familien" not in client.get("/team").text.split("Åbne markeringer")[1].split("</table>")[0]


def test_a_leader_registers_an_absence_and_imported_rows_are_read_only(client, engine, town):
    t, _ = town
    sign_in_as(client, "L1")
    team = client.get("/team")
    assert "Fra sagssystemet" in team.text and "Kan kun ændres i sagssystemet" in team.text
    form = client.get(f"/team/fravaer?team={t.team.id}")
    token = csrf_of(form.text)
    bad = client.post("/team/fravaer", data={"csrf_token": token, "team": t.team.id,
                                             "medarbejder": t.workers["W1"].id, "fravaer-fra": "10-07-2025",
                                             "fravaer-til": "09-07-2025", "vikar": t.workers["W1"].id})
    assert bad.status_code == 400 and 'href="#fravaer-til"' in bad.text and 'href="#fravaer-vikar"' in bad.text
    ok = client.post("/team/fravaer", data={"csrf_token": token, "team": t.team.id,
                                            "medarbejder": t.workers["W1"].id, "fravaer-fra": "08-07-2025",
                                            "fravaer-til": "11-07-2025", "vikar": t.workers["W2"].id})
    assert ok.status_code == 303
    with Session(engine) as s:
        web_row = s.exec(select(Absence).where(Absence.source == "web")).one()
        assert web_row.substitute_id == t.workers["W2"].id and web_row.registered_by_id == t.workers["L1"].id
        imported = s.exec(select(Absence).where(Absence.source == "import")).one()
    refused = client.post(f"/team/fravaer/{imported.id}/afslut", data={"csrf_token": token, "team": t.team.id})
    assert refused.status_code == 400 and "sagssystemet" in refused.text
    # Carl's imported absence has no substitute; a web row for the same days names Bo, and the
    # team page's "today" column shows what routing will do (the web row wins).
    client.post("/team/fravaer", data={"csrf_token": token, "team": t.team.id, "medarbejder": t.workers["W3"].id,
                                       "fravaer-fra": "08-07-2025", "fravaer-til": "09-07-2025",
                                       "vikar": t.workers["W2"].id})
    page = client.get("/team")
    assert "Registreret her af Lise Leder" in page.text
    assert "Fraværende til og med 09-07-2025; stedfortræder Bo Vikar" in page.text
    assert "tilsidesat af en registrering her" in page.text
    # A caseworker cannot register absences.
    client.post("/logud", data={"csrf_token": csrf_of(page.text)})
    sign_in_as(client, "W1")
    assert client.get(f"/team/fravaer?team={t.team.id}").status_code == 403


def test_the_settings_page_makes_a_calendar_url_once_revokes_it_and_stores_the_digest_choice(client, engine, town):
    sign_in_as(client, "W1")
    page = client.get("/indstillinger")
    assert page.status_code == 200 and "Kalender med dine frister" in page.text
    made = client.post("/indstillinger/kalender", data={"csrf_token": csrf_of(page.text), "omfang": "own"})
    url = re.search(r'id="kalender-adresse" class="feed-url" type="text" readonly value="([^"]+)"', made.text).group(1)
    assert "/ical/wdc_" in url
    path = url.split("127.0.0.1", 1)[1]
    feed = client.get(path)
    assert feed.status_code == 200
    assert [str(e["summary"]) for e in icalendar.Calendar.from_ical(feed.content).walk("VEVENT")] == [
        "Børnefaglig undersøgelse afsluttet – sag S-8001"]
    again = client.get("/indstillinger")
    assert url not in again.text  # shown once
    client.post("/indstillinger/kalender/tilbagekald", data={"csrf_token": csrf_of(again.text), "omfang": "own"})
    assert client.get(path).status_code == 404
    saved = client.post("/indstillinger/oversigt", data={"csrf_token": csrf_of(again.text), "oversigt": "7"})
    assert saved.status_code == 303
    with Session(engine) as s:
        assert daily_digest_hour(s, town[0].workers["W1"].id) == 7
    bad = client.post("/indstillinger/oversigt", data={"csrf_token": csrf_of(again.text), "oversigt": "3"})
    assert bad.status_code == 400 and 'href="#oversigt-hver"' in bad.text
