"""The calendar feed's content: a worker's (or a team's) open deadlines as an RFC 5545 calendar.

``load_feed_items`` reads the deadlines (I/O: database); ``build_calendar`` (pure) writes the
iCalendar text with the ``icalendar`` package. Outlook's and Google's "subscribe from URL" fetch it
again every few hours; a stable UID per deadline makes a moved deadline replace its event.

Each event:
- at the due time: a duty due "at the end of a date" (local midnight) is an all-day event on that
  last day; one due at a clock time (the 24-hour assessment) is a 15-minute event ending then;
- titled with the duty and the case reference only (``SUMMARY``); the paragraph, the due time and
  the case-system link in ``DESCRIPTION`` and ``URL``; never a CPR number or a child's name;
- ``TRANSP:TRANSPARENT``, so Outlook does not show the day as busy;
- an alarm (``VALARM``) at the deadline's first warning stage, as an absolute time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from icalendar import Alarm, Calendar, Event
from sqlmodel import Session, select

from watchdog.casestore import Case, Worker
from watchdog.clock import ensure_aware, format_due, to_local
from watchdog.deadlines import Deadline
from watchdog.rules.types import Duty, Status

FEED_STATUSES = (Status.OPEN, Status.BREACHED)
TIMED_EVENT = timedelta(minutes=15)

# Short Danish names for a calendar title (the full ones are in render.DUTY_NAMES_DA).
SHORT_DUTY_DA: dict[Duty, str] = {
    Duty.ASSESSMENT_24H: "Vurdering af underretning (24 timer)",
    Duty.REASSESSMENT: "Genvurdering af underretning",
    Duty.INVESTIGATION_4M: "Børnefaglig undersøgelse afsluttet",
    Duty.FOLLOW_UP: "Opfølgning på indsats",
    Duty.RECEIPT_CONFIRMATION: "Kvittering til underretter",
    Duty.CHILD_CONVERSATION: "Børnesamtale",
    Duty.PLAN: "Handleplan / barnets plan",
    Duty.SUPERVISION_VISIT: "Tilsynsbesøg",
    Duty.AFTERCARE_DECISION: "Afgørelse om støtte efter 18 år",
}


@dataclass(frozen=True)
class FeedItem:
    deadline_id: int
    case_ref: str
    case_link: str
    duty: Duty
    citation: str
    status: Status
    due: datetime
    clock_start: datetime
    computed_at: datetime
    first_warning: datetime | None
    worker_name: str | None  # shown in a team feed only


def load_feed_items(session: Session, settings, *, worker_id: int | None = None,
                    team_id: int | None = None) -> list[FeedItem]:
    """The open (and breached) deadlines of a worker (responsible for them) or of a team."""
    from watchdog.planning import ladder_stages
    from watchdog.reports.digest import case_link_for
    from watchdog.rules.calendar import is_non_working_day

    query = (select(Deadline, Case.ext_id, Case.link, Worker.name)
             .join(Case, Case.id == Deadline.case_id)
             .outerjoin(Worker, Worker.id == Deadline.responsible_worker_id)
             .where(Deadline.status.in_(FEED_STATUSES)).order_by(Deadline.due, Deadline.id))
    if worker_id is not None:
        query = query.where(Deadline.responsible_worker_id == worker_id)
    if team_id is not None:
        query = query.where(Case.team_id == team_id)
    items = []
    for d, ref, link, name in session.execute(query).all():
        stages = ladder_stages(d, settings.alerts, is_working_day=lambda day: not is_non_working_day(day))
        items.append(FeedItem(
            deadline_id=d.id, case_ref=ref, case_link=case_link_for(ref, link, settings), duty=Duty(d.duty),
            citation=d.citation, status=Status(d.status), due=d.due, clock_start=d.clock_start,
            computed_at=d.computed_at, first_warning=stages[0][1] if stages else None, worker_name=name))
    return items


def uid_domain(settings) -> str:
    """The UID's domain: the web app's host, so two installations never share UIDs."""
    host = urlsplit(settings.web.base_url).hostname if settings.web.base_url else None
    return host or "frist-watchdog.invalid"


def _all_day(due: datetime) -> date | None:
    """The last local day of a deadline due at the end of a date; None for a clock-time due."""
    local = to_local(due)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return (local - timedelta(days=1)).date()
    return None


def build_calendar(items: list[FeedItem], *, name: str, now: datetime, domain: str,
                   team_feed: bool = False) -> bytes:
    """The feed as iCalendar bytes (CRLF lines, folded at 75 octets, UTF-8). Pure."""
    now = ensure_aware(now, what="now")
    cal = Calendar()
    cal.add("prodid", "-//frist-watchdog//Frister//DA")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", "Europe/Copenhagen")
    # RFC 7986 and its Microsoft predecessor: how often a subscriber should fetch it again.
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for item in items:
        cal.add_component(_event(item, now=now, domain=domain, team_feed=team_feed))
    return cal.to_ical()


def _event(item: FeedItem, *, now: datetime, domain: str, team_feed: bool) -> Event:
    from watchdog.render import DUTY_NAMES_DA, describe_time_left

    event = Event()
    event.add("uid", f"deadline-{item.deadline_id}@{domain}")
    event.add("dtstamp", now)
    event.add("last-modified", ensure_aware(item.computed_at))
    title = f"{SHORT_DUTY_DA.get(item.duty, item.duty.value)} – sag {item.case_ref}"
    event.add("summary", title)
    day = _all_day(item.due)
    if day is not None:
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
    else:
        event.add("dtstart", ensure_aware(item.due) - TIMED_EVENT)
        event.add("dtend", ensure_aware(item.due))
    event.add("transp", "TRANSPARENT")
    event.add("class", "PRIVATE")
    event.add("url", item.case_link)
    lines = [f"Frist: {format_due(item.due)} ({describe_time_left(item.due, now)}).",
             f"Pligt: {DUTY_NAMES_DA.get(item.duty, item.duty.value)}.", f"Hjemmel: {item.citation}."]
    if team_feed and item.worker_name:
        lines.append(f"Sagsbehandler: {item.worker_name}.")
    lines += [f"Åbn sagen: {item.case_link}",
              "En lovbestemt frist flytter sig ikke; kalenderen opdateres, når sagens oplysninger ændres."]
    event.add("description", "\n".join(lines))
    if item.status == Status.BREACHED or item.due <= now:
        event.add("categories", ["Overskredet"])
    if item.first_warning is not None:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"Frist nærmer sig: {title}")
        alarm.add("trigger", ensure_aware(item.first_warning), parameters={"VALUE": "DATE-TIME"})
        event.add_component(alarm)
    return event
