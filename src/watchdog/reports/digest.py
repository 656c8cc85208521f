"""The leaders' weekly digest: last week's breaches, the next two weeks' risks, the open breaches,
and this year's compliance per duty, for each team leader, once a week.

- ``reports.digest_data`` reads the deadlines, the year-to-date barometer and the open
  acknowledgements of every team at once (I/O: database; a fixed number of queries).
- ``build_digest`` (pure) picks the items; ``render_digest`` (pure) writes the Danish message:
  text and HTML (``templates/email/digest.html``) for email, each list capped at
  ``alerts.max_items_per_section`` with "og N flere" and the team page's link, and a compact
  Adaptive Card (counts and a link, ``watchdog.cards``) for Teams. Weeks: ``reports.weeks``.
- ``enqueue_weekly_digests`` (I/O) puts one digest per leader, week and channel into the outbox,
  key ``digest:{leader_id}:{iso_week}:{channel}``. The scheduler's cron job (default Monday 07:00
  Europe/Copenhagen, ``settings.schedule.digest_*``) calls it, and so does every poll: a week
  whose send time passed while the service was down is sent when it is back. After several
  missed weeks only the latest is sent: an older digest would only repeat it with stale lists.

What "week W's digest" holds: it is sent at the digest time in ISO week W and covers the
deadlines due in week W−1 that were not met in time (breached, or met late), the open deadlines
due in the 14 days after it is built (per caseworker), every breach still open, and the barometer
of the year so far. Items name the case reference, the duty, the paragraph and the due time;
never a CPR number or a child's name.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from watchdog.casestore import Team, Worker, WorkerRole
from watchdog.clock import ensure_aware, format_due
from watchdog.outbox import Alert, AlertKind, Channel, NewAlert, enqueue
from watchdog.render import DUTY_NAMES_DA, Message, message_sensitive, message_to_payload
from watchdog.templating import render as render_template
from watchdog.cards import counts_card
from watchdog.reports.weeks import (  # noqa: F401 - part of this module's API
    iso_week_of, latest_due_week, parse_iso_week, send_time, week_monday,
)
from watchdog.reports import ReportInputError
from watchdog.reports.barometer import JA
from watchdog.reports.digest_data import (  # noqa: F401 - part of this module's API
    AT_RISK_DAYS, DigestData, DigestDeadline, case_link_for, load_digest_data, load_digests_data,
    past_week_window as _past_week_window,
)
from watchdog.rules.types import Duty, Status

log = logging.getLogger(__name__)

DIGEST_STAGE = "weekly"
_MONTHS_DA = ["januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september",
              "oktober", "november", "december"]

# Short Danish names of the barometer questions, for the compliance lines.
QUESTION_LABELS_DA = {
    "investigation_4m": "Børnefaglig undersøgelse inden for 4 måneder",
    "assessment_24h": "Vurdering af underretning inden for 24 timer",
    "reassessment": "Genvurdering af underretning",
    "follow_up": "Første opfølgning inden for 3 måneder",
    "follow_up_later": "Senere opfølgninger",
    "child_conversation": "Børnesamtale før afgørelsen",
    "plan": "Handleplan / barnets plan",
    "receipt_confirmation": "Kvittering til fagperson inden for 6 hverdage",
    "supervision_visit": "Tilsynsbesøg",
    "aftercare_decision": "Afgørelse om støtte efter 18 år",
}
# Always shown, even with no cases yet this year: the four duties the service exists for.
_MAIN_QUESTIONS = ("assessment_24h", "investigation_4m", "follow_up", "reassessment")

FOOTER_DA = ("Ugeoversigten er sendt automatisk af watchdog (fristovervågning). Den nævner sager "
             "ved sagsnummer og indeholder med vilje hverken CPR-nummer eller navn på barnet.")


# --------------------------------------------------------------------------------------------
# Content (pure); the data is read by ``reports.digest_data``
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComplianceLine:
    key: str
    label: str
    ja: int
    total: int
    percent: int | None


@dataclass(frozen=True)
class DigestContent:
    leader_name: str
    team_name: str
    week: str
    past_week: tuple[date, date]  # Monday and Sunday of the week before
    now: datetime
    breaches_past_week: tuple[DigestDeadline, ...]
    at_risk: tuple[tuple[str, tuple[DigestDeadline, ...]], ...]  # per caseworker, by name
    open_breaches: tuple[DigestDeadline, ...]
    compliance: tuple[ComplianceLine, ...]
    year: int
    year_to: date
    acknowledged: tuple = ()  # open "jeg er på sagen" (acknowledgements.AckView), soonest end first

    @property
    def at_risk_count(self) -> int:
        return sum(len(items) for _, items in self.at_risk)


def build_digest(leader_name: str, team_name: str, data: DigestData, week: str, now: datetime) -> DigestContent:
    """Pick the digest's items for week ``week`` as of ``now``. Pure."""
    now = ensure_aware(now, what="now")
    past_start, past_end = _past_week_window(week)
    horizon = now + timedelta(days=AT_RISK_DAYS)
    # An open deadline whose due time has passed is a breach the poll has not marked yet.
    overdue = lambda d: d.status == Status.BREACHED or (d.status == Status.OPEN and d.due <= now)  # noqa: E731
    breaches_past_week = tuple(
        d for d in data.deadlines
        if past_start < d.due <= past_end and (overdue(d) or d.status == Status.MET_LATE))
    open_breaches = tuple(d for d in data.deadlines if overdue(d))
    per_worker: dict[str, list[DigestDeadline]] = defaultdict(list)
    for d in data.deadlines:
        if d.status == Status.OPEN and now < d.due <= horizon:
            per_worker[d.worker_name or "Ingen ansvarlig rådgiver"].append(d)
    at_risk = tuple((name, tuple(sorted(items, key=lambda d: (d.due, d.deadline_id))))
                    for name, items in sorted(per_worker.items()))
    compliance = tuple(
        ComplianceLine(t.key, QUESTION_LABELS_DA.get(t.key, t.key), t.count(JA), t.total, t.percent(JA))
        for t in data.year_to_date.tables if t.total or t.key in _MAIN_QUESTIONS)
    monday = week_monday(week)
    return DigestContent(
        leader_name=leader_name, team_name=team_name, week=week,
        past_week=(monday - timedelta(days=7), monday - timedelta(days=1)), now=now,
        breaches_past_week=breaches_past_week, at_risk=at_risk, open_breaches=open_breaches,
        compliance=compliance, year=data.year_to_date.period.start.year,
        year_to=data.year_to_date.period.end, acknowledged=data.acknowledged,
    )


# --------------------------------------------------------------------------------------------
# Rendering (pure)
# --------------------------------------------------------------------------------------------


def _day_da(day: date) -> str:
    return f"{day.day}. {_MONTHS_DA[day.month - 1]} {day.year}"


def _status_da(d: DigestDeadline, now: datetime) -> str:
    if d.status == Status.MET_LATE:
        return "opfyldt for sent"
    if d.status == Status.BREACHED or d.due <= now:
        return "overskredet, stadig åben"
    return "åben"


def _line(d: DigestDeadline, now: datetime, *, with_worker: bool = True) -> str:
    policy = " (kommunal frist)" if d.municipal_policy else ""
    worker = f", rådgiver: {d.worker_name}" if with_worker and d.worker_name else ""
    return (f"Sag {d.case_ref}: {DUTY_NAMES_DA[d.duty]} ({d.citation}){policy}, frist {format_due(d.due)}"
            f" – {_status_da(d, now)}{worker}")


def _percent(line: ComplianceLine) -> str:
    return "ingen sager endnu" if line.percent is None else f"{line.ja} af {line.total} ({line.percent} %)"


@dataclass(frozen=True)
class DigestSection:
    """One numbered section of the digest: its heading, the lines shown (flat, or per
    caseworker in ``groups``) and how many were left out for ``og N flere``."""

    heading: str
    lines: tuple[str, ...] = ()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hidden: int = 0

    @property
    def empty(self) -> bool:
        return not self.lines and not self.groups


def _capped(lines: list[str], cap: int) -> tuple[tuple[str, ...], int]:
    return tuple(lines[:cap]), max(0, len(lines) - cap)


def _capped_groups(groups: list[tuple[str, list[str]]], cap: int):
    shown, room = [], cap
    for name, items in groups:
        if room <= 0:
            break
        shown.append((name, tuple(items[:room])))
        room -= len(items[:room])
    return tuple(shown), sum(len(items) for _, items in groups) - (cap - room)


def digest_sections(c: DigestContent, *, max_items: int) -> list[DigestSection]:
    """The digest's four sections, the deadlines at risk first, each list capped at
    ``max_items`` (pure)."""
    past = f"{_day_da(c.past_week[0])} – {_day_da(c.past_week[1])}"
    ytd = f"{_day_da(date(c.year, 1, 1))} – {_day_da(c.year_to)}"
    past_lines, past_hidden = _capped([_line(d, c.now) for d in c.breaches_past_week], max_items)
    groups, risk_hidden = _capped_groups(
        [(f"{name} ({len(items)})", [_line(d, c.now, with_worker=False) for d in items]) for name, items in c.at_risk],
        max_items)
    # The open breaches most recent first: the long-standing ones are counted, the new ones read.
    # Those already listed under last week are counted here but not listed twice.
    listed = {d.deadline_id for d in c.breaches_past_week[:max_items]}
    open_lines, open_hidden = _capped([_line(d, c.now) for d in sorted(
        c.open_breaches, key=lambda d: (-d.due.timestamp(), d.deadline_id)) if d.deadline_id not in listed], max_items)
    repeated = sum(1 for d in c.open_breaches if d.deadline_id in listed)
    above = f"; {repeated} af dem står under sidste uge ovenfor" if repeated else ""
    # What can still be met first (DESIGN.md invariant 8), then what went wrong.
    sections = [
        DigestSection(f"Frister i risiko de næste {AT_RISK_DAYS} dage: {c.at_risk_count}", groups=groups,
                      hidden=risk_hidden),
        DigestSection(f"Overskredne frister i sidste uge ({past}): {len(c.breaches_past_week)}",
                      past_lines, hidden=past_hidden),
        DigestSection(f"Overskredne frister, der stadig er åbne: {len(c.open_breaches)} (de nyeste først{above})",
                      open_lines, hidden=open_hidden),
        DigestSection(f"Overholdelse i år ({ytd}), andel sager med \"Ja\"",
                      tuple(f"{line.label}: {_percent(line)}" for line in c.compliance)),
    ]
    if c.acknowledged:  # the reason stays on the team page: free text never goes into a message
        ack_lines, ack_hidden = _capped([f"Sag {a.case_ref}: {DUTY_NAMES_DA[a.duty]}, {a.worker_name} til og med "
                                         f"{a.ends_on:%d-%m-%Y}" for a in c.acknowledged], max_items)
        sections.append(DigestSection(f"\"Jeg er på sagen\" – påmindelserne er stoppet: {len(c.acknowledged)}",
                                      ack_lines, hidden=ack_hidden))
    return sections


def render_digest(content: DigestContent, *, link: str | None = None, list_url: str | None = None,
                  max_items: int = 15) -> Message:
    """The digest as a Danish message: HTML and text for email, a compact card for Teams. Each
    list shows at most ``max_items`` items, then "og N flere" with ``list_url`` (the web app's
    team page), so the digest stays short however large the backlog."""
    c = content
    _, week_no = parse_iso_week(c.week)
    subject = (f"Ugeoversigt uge {week_no}: {len(c.breaches_past_week)} overskredet i sidste uge, "
               f"{c.at_risk_count} i risiko, {len(c.open_breaches)} åbne overskridelser – {c.team_name}")
    intro = f"Her er ugens overblik over fristerne i {c.team_name} (uge {week_no})."
    sections = digest_sections(c, max_items=max_items)
    more = (lambda n: f"og {n} flere: {list_url}") if list_url else (lambda n: f"og {n} flere")
    text = [f"Kære {c.leader_name},", "", intro, ""]
    for n, section in enumerate(sections, 1):
        text.append(f"{n}. {section.heading}")
        for group, items in section.groups:
            text.append(f"   {group}:")
            text.extend(f"   - {i}" for i in items)
        text.extend(f"   - {i}" for i in section.lines)
        if section.hidden:
            text.append(f"   {more(section.hidden)}")
        if section.empty:
            text.append("   Ingen.")
        text.append("")
    if list_url:
        text.append(f"Hele listen: {list_url}")
    if link:
        text.append(f"Sagssystemet: {link}")
    text.append(FOOTER_DA)
    html = render_template("email/digest.html", leader_name=c.leader_name, intro=intro, sections=sections,
                           list_url=list_url, link=link, footer=FOOTER_DA)
    return Message(subject=subject, text="\n".join(text), html=html, card=_card(c, subject, list_url or link, full_list=bool(list_url)))


def _card(c: DigestContent, subject: str, link: str | None, *, full_list: bool) -> dict[str, Any]:
    facts = [("Overskredet i sidste uge", str(len(c.breaches_past_week))),
             (f"I risiko de næste {AT_RISK_DAYS} dage", str(c.at_risk_count)),
             ("Åbne overskridelser", str(len(c.open_breaches)))]
    facts += [(f"{line.label} (i år)", _percent(line)) for line in c.compliance if line.key in _MAIN_QUESTIONS]
    return counts_card(f"Ugeoversigt uge {parse_iso_week(c.week)[1]} – {c.team_name}", facts,
                       note="Hele oversigten med sagsnumre står i e-mailen.", link=link,
                       link_title="Se hele listen" if full_list else "Åbn sagssystemet")


def system_link(settings) -> str:
    """The case system's front page, from the case-link template (scheme and host)."""
    parts = urlsplit(settings.alerts.case_link_template)
    return f"{parts.scheme}://{parts.netloc}/"


# --------------------------------------------------------------------------------------------
# Preview and enqueue (I/O)
# --------------------------------------------------------------------------------------------


def active_leaders(session: Session, leader: str | None = None) -> list[tuple[Worker, Team]]:
    stmt = (select(Worker, Team).join(Team, Team.id == Worker.team_id)
            .where(Worker.role == WorkerRole.LEADER, Worker.active == True)  # noqa: E712
            .order_by(Worker.id))
    if leader is not None:
        stmt = stmt.where(Worker.ext_id == leader)
    found = list(session.exec(stmt).all())
    if leader is not None and not found:
        raise ReportInputError(f"no active team leader with id {leader!r}")
    return found


def digest_message(leader: Worker, team: Team, data: DigestData, *, week: str, now: datetime, settings) -> Message:
    """A leader's digest for ``week`` from their team's data (``load_digests_data``). Pure."""
    from watchdog.message_context import full_list_url

    return render_digest(build_digest(leader.name, team.name, data, week, now), link=system_link(settings),
                         list_url=full_list_url(settings, leader=True),
                         max_items=settings.alerts.max_items_per_section)


def _messages(session: Session, leaders: list[tuple[Worker, Team]], *, week: str, now: datetime, settings):
    """Each leader's digest, from one load of their teams' data (a fixed number of queries)."""
    if not leaders:
        return []
    data = load_digests_data(session, week=week, now=now, settings=settings, team_ids={t.id for _, t in leaders})
    return [(w, digest_message(w, t, data[t.id], week=week, now=now, settings=settings)) for w, t in leaders]


def preview_digests(session: Session, *, now: datetime, settings, leader: str | None = None,
                    week: str | None = None) -> list[tuple[Worker, Message]]:
    """The digests as they would be sent, without sending anything."""
    week = week or latest_due_week(now, settings.schedule)
    parse_iso_week(week)
    return _messages(session, active_leaders(session, leader), week=week, now=now, settings=settings)


def digest_key(leader_id: int, week: str, channel: Channel) -> str:
    return f"digest:{leader_id}:{week}:{Channel(channel).value}"


def enqueue_weekly_digests(session: Session, *, now: datetime, settings) -> int:
    """Enqueue the latest due week's digest for every active leader who has not got it yet.

    Cheap when there is nothing to do (every poll calls it): the week's keys are read first and
    only missing digests are built. The outbox's unique key keeps a digest single even when two
    replicas get here at once.
    """
    now = ensure_aware(now, what="now")
    week = latest_due_week(now, settings.schedule)
    scheduled = send_time(week, settings.schedule)
    # The keys this week's digests would have, looked up by the unique index (plain rows: on
    # most polls every active leader has the week's digest already). A LIKE on the key would read
    # the whole outbox on SQLite, where LIKE cannot use the index.
    wanted = [digest_key(leader_id, week, ch)
              for leader_id, teams_url in session.execute(select(Worker.id, Worker.teams_workflow_url).where(
                  Worker.role == WorkerRole.LEADER, Worker.active == True)).all()  # noqa: E712
              for ch in ((Channel.EMAIL, Channel.TEAMS) if teams_url else (Channel.EMAIL,))]
    existing: set[str] = set()
    for start in range(0, len(wanted), 500):
        existing.update(session.exec(select(Alert.key).where(Alert.key.in_(wanted[start:start + 500]))).all())
    if existing.issuperset(wanted):
        return 0
    todo = []
    for leader, team in active_leaders(session):
        channels = [(Channel.EMAIL, leader.email)]
        if leader.teams_workflow_url:
            channels.append((Channel.TEAMS, leader.teams_workflow_url))
        missing = [(ch, addr) for ch, addr in channels if digest_key(leader.id, week, ch) not in existing]
        if missing:
            todo.append((leader, team, missing))
    messages = _messages(session, [(leader, team) for leader, team, _ in todo], week=week, now=now, settings=settings)
    new: list[NewAlert] = []
    for (leader, _team, missing), (_, message) in zip(todo, messages, strict=True):
        found = message_sensitive(message)
        if found:  # a CPR-like number in a case reference: never send it (DESIGN invariant 5)
            log.error("digest for leader %s week %s not sent: %d CPR-like numbers in it", leader.ext_id, week, len(found))
            continue
        payload = message_to_payload(message)
        new += [NewAlert(key=digest_key(leader.id, week, ch), kind=AlertKind.DIGEST, stage=DIGEST_STAGE,
                         recipient_address=addr, channel=ch, send_after=scheduled,
                         recipient_worker_id=leader.id, payload=payload)
                for ch, addr in missing]
    return enqueue(session, new, now=now)
