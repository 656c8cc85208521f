"""Stage 5a, rendering: what one message says, item by item, and in which order.

Pure: no database, no clock, no network. ``arrange`` takes the alert items of one recipient, a
``MessageContext`` and ``now``, and decides the sections, the subject and the intro that every
form of the message shares (the email text and HTML in ``watchdog.render``, the Teams card in
``watchdog.cards``):

1. **Frister, du stadig kan nå**: deadlines not yet due, soonest first. A person can still meet
   these; they always come first, and the subject names the most urgent one ("Frist i morgen: …").
2. **Nye overskridelser**: breaches new since the recipient's last message (an escalation is new
   by definition), most recent first.
3. **Længe overskredet**: the breaches the recipient was told about before (or, in a first message,
   breached more than ``backlog_days`` ago), most recent first.
4. **Backlog** (leaders): deadlines first seen long after their breach (go-live, a backfill),
   counted per caseworker and duty, never listed.

Every list shows at most ``MessageContext.max_items`` items, then "og N flere" with the link to
the full list. A leader's message leads with counts per caseworker (``MessageContext.counts``).
So a message stays short however large the backlog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from watchdog.clock import LOCAL_TZ, ensure_aware, format_due, to_local
from watchdog.outbox import AlertKind
from watchdog.rules.types import Duty, Regime, Status

# The duty in plain Danish, as a caseworker would say it ("what must be done").
DUTY_NAMES_DA: dict[Duty, str] = {
    Duty.ASSESSMENT_24H: "vurdering af underretningen inden for 24 timer",
    Duty.REASSESSMENT: "genvurdering af underretningen med en ny medarbejder",
    Duty.INVESTIGATION_4M: "afslutning af den børnefaglige undersøgelse inden for 4 måneder",
    Duty.FOLLOW_UP: "opfølgning på indsatsen",
    Duty.RECEIPT_CONFIRMATION: "kvittering for modtagelse til den fagperson, der underrettede",
    Duty.CHILD_CONVERSATION: "børnesamtale før afgørelsen",
    Duty.PLAN: "handleplan / barnets plan",
    Duty.SUPERVISION_VISIT: "tilsynsbesøg med samtale med barnet",
    Duty.AFTERCARE_DECISION: "afgørelse om støtte efter det fyldte 18. år",
}

# The message says this for every deadline set by municipal policy, not by the statute (LEGAL.md:
# the reassessment has no statutory time limit).
MUNICIPAL_NOTE_DA = "kommunal frist: loven fastsætter ingen tidsfrist; fristen er kommunens egen"



@dataclass(frozen=True)
class AlertItem:
    """One deadline alert as the recipient should read it (one row of a message)."""

    alert_id: int
    kind: AlertKind
    stage: str
    duty: Duty
    regime: Regime
    citation: str
    case_ref: str
    case_link: str
    due: datetime
    status: Status
    municipal_policy: bool
    responsible_name: str | None = None  # the caseworker's name, shown to leaders/substitutes
    team_name: str | None = None  # the case's team (a leader's backlog summary is per team)
    deadline_id: int | None = None  # several alerts about one deadline make one line



# ---------------------------------------------------------------------------------------------
# Time left / time late
# ---------------------------------------------------------------------------------------------

def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def describe_span(span: timedelta, due: datetime, now: datetime) -> str:
    """A duration in Danish: hours and minutes under two days, whole calendar days above.

    Under two days the real elapsed time matters (a 24-hour assessment across the night of a DST
    change has 24 real hours, not 23 or 25). From two days on, the caseworker counts calendar
    days: "14 dage" from 20 March to 3 April, even though DST makes that 13 days and 23 hours.
    """
    seconds = abs(span.total_seconds())
    if seconds < 48 * 3600:
        minutes_total = int(seconds // 60)
        hours, minutes = divmod(minutes_total, 60)
        if hours == 0:
            return _plural(minutes, "minut", "minutter")
        if minutes == 0:
            return _plural(hours, "time", "timer")
        return f"{_plural(hours, 'time', 'timer')} og {_plural(minutes, 'minut', 'minutter')}"
    # Wall-clock difference in Copenhagen: both sides in the same zone object subtract as local times.
    a, b = sorted((due.astimezone(LOCAL_TZ), now.astimezone(LOCAL_TZ)))
    wall = a.replace(tzinfo=None) - b.replace(tzinfo=None)
    days = abs(wall).days
    return _plural(days, "dag", "dage")


def describe_time_left(due: datetime, now: datetime) -> str:
    """'3 dage tilbage', '2 timer og 5 minutter tilbage', 'overskredet med 4 dage', 'forfalder nu'."""
    due = ensure_aware(due, what="due")
    now = ensure_aware(now, what="now")
    span = due - now
    if abs(span) < timedelta(minutes=1):
        return "forfalder nu"
    if span > timedelta(0):
        return f"{describe_span(span, due, now)} tilbage"
    return f"overskredet med {describe_span(span, due, now)}"


# ---------------------------------------------------------------------------------------------
# The arrangement
# ---------------------------------------------------------------------------------------------

BACKLOG_STAGE = "backlog"  # planning.BACKLOG_STAGE (planning imports outbox, not this module)
NO_WORKER_DA = "Ingen ansvarlig rådgiver"
MEETABLE, NEW, OLD = "meetable", "new", "old"
_TITLES = {MEETABLE: "Frister, du stadig kan nå", NEW: "Nye overskridelser",
           OLD: "Længe overskredet"}
_LEADER_TITLES = {MEETABLE: "Frister, du selv skal nå", NEW: "Nye overskridelser siden din sidste besked",
                  OLD: "Længe overskredet"}
MAX_COUNT_ROWS = 40  # caseworkers in a leader's counts table


@dataclass(frozen=True)
class WorkerCount:
    """A leader's overview line: one caseworker's open breaches and deadlines due within 7 days."""

    name: str
    breached: int
    due_soon: int


@dataclass(frozen=True)
class MessageContext:
    """What a message shows beyond its own items (loaded by ``watchdog.message_context``)."""

    # Breaches due after this instant are new to the recipient (their last message); None: all.
    new_since: datetime | None = None
    leader: bool = False  # a team leader or head of unit: counts, not a copy of every item
    counts: tuple[WorkerCount, ...] = ()
    counts_scope: str | None = None  # e.g. the team's name, for the counts heading
    list_url: str | None = None  # the full list (the web app), for "og N flere"
    max_items: int = 15


@dataclass(frozen=True)
class Line:
    """One item as one compact line: the same words in every form."""

    item: AlertItem
    duty: str
    due_text: str
    status: str  # "3 dage tilbage", "overskredet med 4 dage", "skal afsluttes snarest …"
    citation: str  # with "(kommunal frist)" for a municipal deadline
    worker: str | None  # the responsible caseworker, for a leader or substitute
    overdue: bool


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    lines: tuple[Line, ...]  # the shown lines (at most max_items)
    total: int  # all items of the section, shown or not

    @property
    def hidden(self) -> int:
        return self.total - len(self.lines)


@dataclass(frozen=True)
class BacklogGroup:
    """One team's backlog: counts per caseworker and per duty, no items."""

    title: str
    total: int
    by_worker: tuple[tuple[str, int], ...]
    by_duty: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Arranged:
    subject: str
    greeting: str
    intro: str
    sections: tuple[Section, ...]  # in order; empty sections left out
    counts: tuple[WorkerCount, ...]
    counts_title: str
    counts_hidden: int
    backlog: tuple[BacklogGroup, ...]
    list_url: str | None

    @property
    def first_item(self) -> AlertItem | None:
        return self.sections[0].lines[0].item if self.sections else None


def _line(item: AlertItem, now: datetime) -> Line:
    overdue = item.due <= now
    status = describe_time_left(item.due, now)
    if item.status == Status.EXCEPTED and overdue:
        status = f"lovligt fraveget (foreløbig vurdering), skal afsluttes snarest; {status}"
    citation = item.citation + (" (kommunal frist)" if item.municipal_policy else "")
    return Line(item=item, duty=DUTY_NAMES_DA.get(item.duty, item.duty.value), due_text=format_due(item.due),
                status=status, citation=citation, worker=item.responsible_name, overdue=overdue)


def classify(item: AlertItem, context: MessageContext, now: datetime) -> str:
    """Which section an item belongs in: meetable, new, old, or the backlog."""
    if item.stage.startswith(BACKLOG_STAGE):  # "backlog", and "backlog_2" to the head of unit
        return BACKLOG_STAGE
    if item.due > now and item.status != Status.EXCEPTED:
        return MEETABLE
    if AlertKind(item.kind) == AlertKind.ESCALATION or context.new_since is None or item.due > context.new_since:
        return NEW
    return OLD


def _due_day(due: datetime) -> date:
    local = to_local(due)
    midnight = (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    return local.date() - timedelta(days=1) if midnight else local.date()


def when_due(due: datetime, now: datetime) -> str:
    """'Frist i dag kl. 14:00', 'Frist i morgen', 'Frist om 5 dage (06-12-2026)'."""
    local = to_local(due)
    clock = "" if (local.hour, local.minute) == (0, 0) else f" kl. {local:%H:%M}"
    days = (_due_day(due) - to_local(now).date()).days
    if days <= 0:
        return f"Frist i dag{clock}"
    if days == 1:
        return f"Frist i morgen{clock}"
    return f"Frist om {days} dage ({_due_day(due):%d-%m-%Y})"


def _more(n: int) -> str:
    return f"(+{n} {'anden' if n == 1 else 'andre'})" if n else ""


def _subject(by_key: dict[str, list[AlertItem]], backlog: list[AlertItem], context: MessageContext,
             now: datetime) -> str:
    total = sum(len(v) for v in by_key.values())
    for key in (MEETABLE, NEW, OLD):
        items = by_key.get(key)
        if not items:
            continue
        first = items[0]
        duty = DUTY_NAMES_DA.get(first.duty, first.duty.value)
        rest = _more(total - 1 + (1 if backlog else 0))
        if key == MEETABLE:
            text = f"{when_due(first.due, now)}: {duty} i sag {first.case_ref}"
        elif key == NEW and context.leader and len(items) > 1:
            text = f"{len(items)} nye overskridelser{f' i {context.counts_scope}' if context.counts_scope else ''}"
            rest = ""
        elif key == NEW:
            text = f"Frist overskredet: {duty} i sag {first.case_ref}"
        else:
            text = (f"Påmindelse: {duty} i sag {first.case_ref} er fortsat overskredet" if len(items) == 1
                    else f"Påmindelse: {len(items)} frister er fortsat overskredet")
            rest = _more(total - len(items)) if len(items) > 1 else rest
        return f"{text} {rest}".strip()
    teams = sorted({i.team_name for i in backlog if i.team_name})
    return f"Overblik: {len(backlog)} gamle overskridelser fundet ved opstart" + (f" – {', '.join(teams)}" if teams else "")


def _intro(by_key: dict[str, list[AlertItem]], backlog: list[AlertItem], context: MessageContext) -> str:
    parts = []
    if by_key.get(MEETABLE):
        n = len(by_key[MEETABLE])
        parts.append(f"{n} {'frist' if n == 1 else 'frister'}, du stadig kan nå")
    if by_key.get(NEW):
        n = len(by_key[NEW])
        parts.append(f"{n} {'ny overskridelse' if n == 1 else 'nye overskridelser'}")
    if by_key.get(OLD):
        n = len(by_key[OLD])
        parts.append(f"{n} {'frist' if n == 1 else 'frister'}, der har været overskredet længe")
    if backlog:
        parts.append(f"et overblik over {len(backlog)} gamle overskridelser")
    text = ", ".join(parts[:-1]) + (" og " if len(parts) > 1 else "") + parts[-1] if parts else "ingen frister"
    lead = "Overblik over dit team og " if context.leader and context.counts else ""
    return f"{lead}{text}. De frister, der stadig kan nås, står først." if by_key.get(MEETABLE) \
        else f"{lead}{text}."


def _backlog_groups(backlog: list[AlertItem]) -> tuple[BacklogGroup, ...]:
    groups = []
    for team in sorted({i.team_name or "" for i in backlog}):
        items = [i for i in backlog if (i.team_name or "") == team]
        by_worker = Counter(i.responsible_name or NO_WORKER_DA for i in items)
        by_duty = Counter(DUTY_NAMES_DA.get(i.duty, i.duty.value) for i in items)
        title = f"Gamle overskridelser fundet ved opstart{f' – {team}' if team else ''}: {len(items)}"
        groups.append(BacklogGroup(
            title=title, total=len(items),
            by_worker=tuple(sorted(by_worker.items(), key=lambda kv: (-kv[1], kv[0])))[:MAX_COUNT_ROWS],
            by_duty=tuple(sorted(by_duty.items(), key=lambda kv: (-kv[1], kv[0])))))
    return tuple(groups)


_KIND_WEIGHT = {AlertKind.ESCALATION: 0, AlertKind.WARNING: 1, AlertKind.REMINDER: 2}


def _one_per_deadline(items: Sequence[AlertItem]) -> list[AlertItem]:
    """One item per deadline: a leader covering for an absent caseworker can get the escalation
    and the caseworker's reminder about the same breach in one round; it is one line."""
    best: dict[object, AlertItem] = {}
    for item in items:
        ident = item.deadline_id if item.deadline_id is not None else ("alert", item.alert_id)
        held = best.get(ident)
        weight = (not item.stage.startswith(BACKLOG_STAGE), _KIND_WEIGHT.get(AlertKind(item.kind), 3))
        if held is None or weight < (not held.stage.startswith(BACKLOG_STAGE), _KIND_WEIGHT.get(AlertKind(held.kind), 3)):
            best[ident] = item
    return list(best.values())


def arrange(items: Sequence[AlertItem], *, recipient_name: str | None, now: datetime,
            context: MessageContext | None = None) -> Arranged:
    """The sections, subject and intro of one recipient's message (see the module docstring)."""
    if not items:
        raise ValueError("a message needs at least one alert item")
    now = ensure_aware(now, what="now")
    context = context or MessageContext()
    for i in items:
        ensure_aware(i.due, what=f"alert {i.alert_id} due")
    by_key: dict[str, list[AlertItem]] = {}
    for item in _one_per_deadline(items):
        by_key.setdefault(classify(item, context, now), []).append(item)
    backlog = by_key.pop(BACKLOG_STAGE, [])
    by_key.get(MEETABLE, []).sort(key=lambda i: (i.due, i.case_ref, i.duty.value, i.alert_id))
    for key in (NEW, OLD):
        by_key.get(key, []).sort(key=lambda i: (-i.due.timestamp(), i.case_ref, i.duty.value, i.alert_id))
    titles = _LEADER_TITLES if context.leader else _TITLES
    sections = tuple(
        Section(key=key, title=titles[key], lines=tuple(_line(i, now) for i in by_key[key][:context.max_items]),
                total=len(by_key[key]))
        for key in (MEETABLE, NEW, OLD) if by_key.get(key))
    counts = context.counts if context.leader else ()
    scope = f" i {context.counts_scope}" if context.counts_scope else ""
    return Arranged(
        subject=_subject(by_key, backlog, context, now),
        greeting=f"Kære {recipient_name}" if recipient_name else "Hej",
        intro=_intro(by_key, backlog, context), sections=sections, counts=counts[:MAX_COUNT_ROWS],
        counts_title=f"Overblik pr. rådgiver{scope}: åbne overskridelser og frister inden for 7 dage",
        counts_hidden=max(0, len(counts) - MAX_COUNT_ROWS), backlog=_backlog_groups(backlog),
        list_url=context.list_url)
