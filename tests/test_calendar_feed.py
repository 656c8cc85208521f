"""The calendar feed: tokens (hash only, revoke), the /ical/{token}.ics route on the serve app, and
the feed parsed by two independent parsers (``icalendar`` and ``vobject``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import icalendar
import pytest
import vobject
from conftest import at
from fastapi.testclient import TestClient
from fixtures_servers import settings_for
from sqlmodel import Session, select
from test_alerts_e2e import Town

from watchdog.casestore import Notification
from watchdog.recompute import refresh_deadlines
from watchdog.feeds import ical
from watchdog.feeds.route import mount
from watchdog.feeds.tokens import (
    TEAM,
    CalendarToken,
    FeedRefused,
    create_feed_token,
    revoke_feed_tokens,
)
from watchdog.intake.api import create_app

NOW = at("2025-06-10T09:00")


@pytest.fixture
def town(engine, session):
    town = Town(session)
    town.investigation("S-9001")  # due at the end of 4 July 2025: an all-day event
    case = town.case("S-9002")
    session.add(Notification(ext_id="N-9002", case_id=case.id, received_at=at("2025-06-10T08:30")))
    town.investigation("S-9003", worker="W3")  # Carl's: not in Anne's feed
    session.commit()
    return town


@pytest.fixture
def client(engine):
    settings = settings_for(web={"base_url": "https://frister.kommune.example.dk"})
    app = create_app(settings, engine)
    mount(app, settings, engine)
    return TestClient(app), settings


def _refresh(engine, settings, now=NOW):
    with Session(engine) as s:
        refresh_deadlines(s, now=now, settings=settings)
        s.commit()


def _token(engine, worker_id, scope="own"):
    with Session(engine) as s:
        new = create_feed_token(s, worker_id=worker_id, scope=scope, now=NOW)
        s.commit()
        return new.token


def test_only_the_tokens_hash_is_stored_and_a_new_token_revokes_the_old_url(engine, town, client):
    http, settings = client
    _refresh(engine, settings)
    anne = town.workers["W1"].id
    first = _token(engine, anne)
    with Session(engine) as s:
        stored = s.exec(select(CalendarToken)).one()
        secret = first.split("_", 2)[2]  # the secret itself may hold "_" (token_urlsafe)
        assert secret not in stored.token_hash and first not in repr(stored.model_dump())
    assert http.get(f"/ical/{first}.ics").status_code == 200
    second = _token(engine, anne)
    assert http.get(f"/ical/{first}.ics").status_code == 404
    assert http.get(f"/ical/{second}.ics").status_code == 200
    with Session(engine) as s:
        assert revoke_feed_tokens(s, worker_id=anne, now=NOW) == 1
        s.commit()
    assert http.get(f"/ical/{second}.ics").status_code == 404
    assert http.get("/ical/wdc_00000000_guess.ics").status_code == 404
    assert http.get("/ical/nonsense.ics").status_code == 404


def test_the_feed_parses_in_two_parsers_with_one_transparent_event_per_open_deadline(engine, town, client):
    http, settings = client
    _refresh(engine, settings)
    response = http.get(f"/ical/{_token(engine, town.workers['W1'].id)}.ics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    body = response.content
    assert b"\r\n" in body and all(len(line) <= 75 for line in body.split(b"\r\n"))
    cal = icalendar.Calendar.from_ical(body)
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    refs = sorted(str(e["summary"]).rsplit("sag ", 1)[1] for e in events.values())
    assert refs == ["S-9001", "S-9002"]  # Carl's case is not in Anne's feed
    for event in events.values():
        assert str(event["transp"]) == "TRANSPARENT"
        assert str(event["url"]).startswith("https://sagssystem.kommune.example.dk/sag/S-900")
        assert str(event["uid"]).endswith("@frister.kommune.example.dk")
        assert "CPR" not in str(event["summary"])
    investigation = next(e for e in events.values() if "S-9001" in str(e["summary"]))
    assert investigation["dtstart"].dt == date(2025, 7, 4)  # all-day on the last day
    assert investigation["dtend"].dt == date(2025, 7, 5)
    (alarm,) = investigation.walk("VALARM")
    assert alarm["trigger"].dt == at("2025-06-04T08:00")  # the first ladder stage, 30 days before
    assessment = next(e for e in events.values() if "24 timer" in str(e["summary"]))
    assert assessment["dtend"].dt == at("2025-06-11T08:30")  # a clock-time due: timed, ending at it

    # An independent parser reads the same thing.
    parsed = vobject.readOne(body.decode("utf-8"))
    uids = sorted(v.uid.value for v in parsed.vevent_list)
    assert uids == sorted(events)
    by_uid = {v.uid.value: v for v in parsed.vevent_list}
    assert by_uid[str(investigation["uid"])].dtstart.value == date(2025, 7, 4)
    assert by_uid[str(investigation["uid"])].transp.value == "TRANSPARENT"


def test_a_moved_deadline_keeps_its_uid_and_the_feed_shows_the_new_date(engine, town, session, client):
    from watchdog.casestore import Investigation

    http, settings = client
    _refresh(engine, settings)
    url = f"/ical/{_token(engine, town.workers['W1'].id)}.ics"
    before = {str(e["uid"]): e["dtstart"].dt for e in icalendar.Calendar.from_ical(http.get(url).content).walk("VEVENT")}
    inv = session.exec(select(Investigation).where(Investigation.ext_id == "U-S-9001")).one()
    inv.aware_at = at("2025-03-20T11:00")  # the clock started later: the deadline moves
    session.add(inv)
    session.commit()
    _refresh(engine, settings, NOW + timedelta(minutes=5))
    after = {str(e["uid"]): e["dtstart"].dt for e in icalendar.Calendar.from_ical(http.get(url).content).walk("VEVENT")}
    assert set(after) == set(before)
    moved = [uid for uid in after if after[uid] != before[uid]]
    assert len(moved) == 1 and after[moved[0]] == date(2025, 7, 20)


def test_a_leaders_team_feed_has_every_caseworkers_deadlines_and_a_caseworker_cannot_have_one(
        engine, town, client):
    http, settings = client
    _refresh(engine, settings)
    with Session(engine) as s, pytest.raises(FeedRefused):
        create_feed_token(s, worker_id=town.workers["W1"].id, scope=TEAM, now=NOW)
    body = http.get(f"/ical/{_token(engine, town.workers['L1'].id, TEAM)}.ics").content
    cal = icalendar.Calendar.from_ical(body)
    assert sorted(str(e["summary"]).rsplit("sag ", 1)[1] for e in cal.walk("VEVENT")) == [
        "S-9001", "S-9002", "S-9003"]
    assert any("Carl Rådgiver" in str(e["description"]) for e in cal.walk("VEVENT"))


def test_build_calendar_is_valid_with_no_deadlines():
    body = ical.build_calendar([], name="Frister – Tom", now=NOW, domain="x.invalid")
    cal = icalendar.Calendar.from_ical(body)
    assert str(cal["version"]) == "2.0" and cal.walk("VEVENT") == []
    assert vobject.readOne(body.decode()).name == "VCALENDAR"
    assert isinstance(NOW, datetime)
