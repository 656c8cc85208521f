"""Acting from the web, in Debian's Chromium (Playwright pointed at ``/usr/bin/chromium``, never its
own browser download) against the real app served by uvicorn, with the real poll and delivery rounds
and the real SMTP server behind it. Time is the app's clock and the ``now`` of each round."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta

import httpx
import icalendar
import pytest
import vobject
from conftest import at
from fixtures_servers import settings_for
from sqlmodel import Session, select
from test_alerts_e2e import ANNE, BO, LISE, Town, deadline_mails, rounds
from web_support import Clock, demo_server  # noqa: F401  (the demo --serve fixture)

from watchdog.delivery import Transport
from watchdog.outbox import Alert, AlertKind, AlertState

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)"),
    pytest.mark.browser,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(engine, settings, clock: Clock):
    """The whole serve app on a loopback port in this process (so the test moves its clock)."""
    import uvicorn

    from watchdog.web.app import service_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(service_app(settings, engine, clock=clock), host="127.0.0.1",
                                           port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _web(smtp_server, database_url, **more):
    return settings_for(smtp_server, database_url=database_url,
                        web={"demo_login": True, "secure_cookies": False}, **more)


def _sign_in(page, base: str, ext_id: str) -> None:
    page.goto(base + "/logind")
    page.select_option("#medarbejder", value=ext_id)
    page.get_by_role("button", name="Log ind").click()
    page.wait_for_load_state()


def test_a_caseworker_acknowledges_a_breach_in_the_browser_and_the_reminder_comes_back_after_the_end(
        engine, session, smtp_server, database_url, browser):
    town = Town(session)
    town.investigation("S-1701")
    session.commit()
    # A reminder a week after the breach, then weekly: the default cadence's first reminder (the
    # day after) would come before Anne acknowledges.
    settings = _web(smtp_server, database_url, alerts={"reminder_days": [7], "reminder_repeat_days": 7})
    transport = Transport(settings)
    rounds(engine, settings, transport, at("2025-07-07T09:00"))  # breached; the leader was escalated to
    clock = Clock(at("2025-07-08T10:00"))
    with served(engine, settings, clock) as base:
        page = browser.new_page()
        _sign_in(page, base, "W1")
        page.get_by_role("link", name="Jeg er på sagen (sag S-1701").click()
        page.get_by_label("Begrundelse").fill("Undersøgelsen afsluttes, venter på skolens udtalelse")
        page.get_by_label("Slutdato").fill("16-07-2025")
        page.get_by_role("button", name="Markér: jeg er på sagen").click()
        assert "Anne Rådgiver er på sagen til og med 16-07-2025" in page.content()
        assert "En lovbestemt frist kan ikke sættes på pause" in page.content()
    # The next polls: no reminder about it, to anybody.
    rounds(engine, settings, transport, at("2025-07-14T09:00"), at("2025-07-15T09:00"), at("2025-07-16T15:00"))
    assert deadline_mails(session, smtp_server, ANNE) == []
    assert len(deadline_mails(session, smtp_server, LISE)) == 1  # the escalation of 7 July only
    # The end date passes: the reminder is back, and Anne is told her acknowledgement ended.
    rounds(engine, settings, transport, at("2025-07-17T08:05"))
    subjects = [str(m.message["Subject"]) for m in smtp_server.to(ANNE)]
    assert any("S-1701" in s and "overskredet" in s for s in subjects), subjects  # the reminder
    assert any("er udløbet: sag S-1701" in s for s in subjects)
    assert len(deadline_mails(session, smtp_server, LISE)) == 1  # leaders get no item reminders


def test_a_demo_caseworkers_calendar_feed_parses_in_two_parsers_and_follows_a_moved_deadline(
        engine, database_url, browser, smtp_server):
    from web_support import NOW, build_demo

    from watchdog.casestore import Case, Investigation, Worker
    from watchdog.deadlines import Deadline
    from watchdog.rules.types import Duty, Status

    settings = _web(smtp_server, database_url)
    build_demo(engine, settings)
    with Session(engine) as s:
        deadline, worker, inv = s.exec(
            select(Deadline, Worker, Investigation).join(Worker, Worker.id == Deadline.responsible_worker_id)
            .join(Investigation, Investigation.id == Deadline.subject_id)
            .where(Deadline.duty == Duty.INVESTIGATION_4M, Deadline.status == Status.OPEN, Deadline.due > NOW)
            .order_by(Deadline.id)).first()
        s.expunge_all()
    with served(engine, settings, Clock(NOW)) as base:
        page = browser.new_page()
        _sign_in(page, base, worker.ext_id)
        page.get_by_role("link", name="Indstillinger").click()
        page.get_by_role("button", name="Lav en ny adresse til mine frister").click()
        url = page.get_by_label("Din nye kalenderadresse").input_value()
        assert url.startswith(base + "/ical/wdc_")

        def events():
            body = httpx.get(url).content
            by_uid = {str(e["uid"]): e for e in icalendar.Calendar.from_ical(body).walk("VEVENT")}
            other = {v.uid.value: v for v in vobject.readOne(body.decode("utf-8")).vevent_list}
            assert set(other) == set(by_uid)  # the independent parser reads the same events
            for uid, e in by_uid.items():
                assert other[uid].dtstart.value == e["dtstart"].dt
                assert other[uid].transp.value == "TRANSPARENT"
            return by_uid

        before = events()
        uid = next(u for u in before if u.startswith(f"deadline-{deadline.id}@"))
        # The case system moves the clock start ten days: the next poll recomputes the deadline.
        with Session(engine) as s:
            row = s.get(Investigation, inv.id)
            row.aware_at = row.aware_at + timedelta(days=10)
            case = s.get(Case, row.case_id)
            case.facts_changed_at = NOW + timedelta(minutes=1)
            s.add_all([row, case])
            s.commit()
        from watchdog.service import poll

        poll(engine, settings, now=NOW + timedelta(minutes=2))
        after = events()
        assert set(after) == set(before)  # the same UIDs: the event is replaced, not doubled
        assert after[uid]["dtstart"].dt != before[uid]["dtstart"].dt


def test_a_leader_registers_an_absence_in_the_browser_and_the_next_warning_goes_to_the_substitute(
        engine, session, smtp_server, database_url, browser):
    town = Town(session)
    town.investigation("S-1702")  # its 30-day warning is due on 4 June 2025
    session.commit()
    settings = _web(smtp_server, database_url)
    with served(engine, settings, Clock(at("2025-06-02T10:00"))) as base:
        page = browser.new_page()
        _sign_in(page, base, "L1")
        page.get_by_role("link", name="Registrér fravær for en rådgiver").click()
        page.select_option("#fravaer-medarbejder", label="Anne Rådgiver")
        page.get_by_label("Første fraværsdag").fill("02-06-2025")
        page.get_by_label("Sidste fraværsdag").fill("13-06-2025")
        page.select_option("#fravaer-vikar", label="Bo Vikar")
        page.get_by_role("button", name="Registrér fravær").click()
        assert "Registreret her af Lise Leder" in page.content()
    rounds(engine, settings, Transport(settings), at("2025-06-04T09:00"))
    assert smtp_server.to(ANNE) == []
    (to_bo,) = smtp_server.to(BO)
    assert "S-1702" in to_bo.text


def test_a_caseworker_switches_to_a_daily_digest_in_the_browser_and_gets_one_message_that_day(
        engine, session, smtp_server, database_url, browser):
    town = Town(session)
    town.investigation("S-1703", aware=at("2025-02-14T10:00"))  # due 14 June: inside the 14 days
    town.investigation("S-1704", aware=at("2025-02-17T10:00"))  # due 17 June
    session.commit()
    settings = _web(smtp_server, database_url)
    with served(engine, settings, Clock(at("2025-06-04T07:30"))) as base:
        page = browser.new_page()
        _sign_in(page, base, "W1")
        page.get_by_role("link", name="Indstillinger").click()
        page.get_by_label("Én daglig oversigt kl. 08:00 på hverdage").check()
        page.get_by_role("button", name="Gem").click()
        assert page.get_by_label("Én daglig oversigt kl. 08:00 på hverdage").is_checked()
    transport = Transport(settings)
    rounds(engine, settings, transport, at("2025-06-04T07:45"), at("2025-06-04T08:00"), at("2025-06-04T11:00"),
           at("2025-06-04T15:30"))
    (digest,) = smtp_server.to(ANNE)
    assert str(digest.message["Subject"]).startswith("Dagens frister 04-06-2025")
    assert "S-1703" in digest.text and "S-1704" in digest.text
    session.expire_all()
    absorbed = session.exec(select(Alert).where(Alert.kind == AlertKind.WARNING, Alert.recipient_address == ANNE)).all()
    assert absorbed and {a.state for a in absorbed} == {AlertState.CANCELLED}
    assert date(2025, 6, 4).weekday() == 2


def test_axe_finds_no_violation_on_the_action_pages_refused_forms_included(demo_server, browser):  # noqa: F811
    """The acknowledgement form (empty and refused), the absence page (refused), the settings page
    with a new calendar URL, on ``watchdog demo --serve``'s data; axe-core as in test_web_browser."""
    from test_web_browser import _axe, _page, _printed, _sign_ins
    from test_web_browser import _sign_in as sign_in

    base, proc = demo_server
    roles = _sign_ins(_printed(proc))
    found: dict[str, list] = {}
    page = _page(browser)
    sign_in(page, base, roles["rådgiver"])
    page.goto(base + "/frister")
    page.click("a[href^='/frist/']")
    found["acknowledge form"] = _axe(page)
    page.get_by_label("Slutdato").fill("banan")
    page.get_by_role("button", name="Markér: jeg er på sagen").click()
    assert "Der er et problem" in page.content()
    found["acknowledge refused"] = _axe(page)
    page.goto(base + "/indstillinger")
    page.get_by_role("button", name="Lav en ny adresse til mine frister").click()
    found["settings with a new URL"] = _axe(page)
    assert not page.csp_errors, page.csp_errors
    page.context.close()
    page = _page(browser)
    sign_in(page, base, roles["teamleder"])
    page.goto(base + "/team")
    found["team with acknowledgements and absences"] = _axe(page)
    page.get_by_role("link", name="Registrér fravær for en rådgiver").click()
    page.get_by_role("button", name="Registrér fravær").click()
    assert "Der er et problem" in page.content()
    found["absence refused"] = _axe(page)
    page.context.close()
    problems = {where: v for where, v in found.items() if v}
    assert not problems, problems
