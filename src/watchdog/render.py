"""Stage 5a, rendering: the Danish message a caseworker or leader receives about their deadlines.

Pure: no database, no clock, no network. Input: the alert items of one recipient (built by the
service from the deadline rows), the recipient's name and ``now``. Output: one ``Message`` with a
subject, a plain text, an HTML body (email) and an Adaptive Card 1.4 (Teams).

What a message may carry (DESIGN.md invariant 5): the case reference, the duty, the paragraph,
the due time, how long is left, the case-system link, and for leaders the responsible
caseworker's name. Never a CPR number or a child's name: the items do not even have fields for
them, and ``message_sensitive`` (``watchdog.sensitive``) is the net that the transport checks every
message against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from html import escape
from typing import Any

from watchdog.clock import LOCAL_TZ, ensure_aware, format_due, format_local
from watchdog.outbox import AlertKind
from watchdog.rules.types import Duty, Regime, Status
from watchdog.sensitive import contains_cpr, find_cpr, message_sensitive  # noqa: F401 (the net)

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

# At most this many items are shown on a Teams card: a card over ~28 KB is refused by Teams and
# by Apprise's template reader (35 KB). The email always lists them all.
CARD_MAX_ITEMS = 15

_FOOTER_DA = (
    "Beskeden er sendt automatisk af watchdog (fristovervågning). Den indeholder med vilje hverken "
    "CPR-nummer eller navn på barnet: åbn sagen via linket."
)

_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


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


@dataclass(frozen=True)
class Message:
    """A rendered message: subject, plain text, HTML (email) and an Adaptive Card 1.4 (Teams)."""

    subject: str
    text: str
    html: str
    card: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Sensitive-data net
# ---------------------------------------------------------------------------------------------

# The pattern and its normalisation live in watchdog.sensitive (one net for the whole service).
find_sensitive = find_cpr


def item_sensitive(item: AlertItem) -> bool:
    """Whether any text of one item (case reference, link, names, citation) holds a CPR-like number.

    The transport checks whole messages; this lets delivery hold back the one offending item of a
    grouped message and send the others (see ``service._deliver_one_message``).
    """
    return any(isinstance(value, str) and contains_cpr(value)
               for value in (getattr(item, f.name) for f in fields(item)))


# ---------------------------------------------------------------------------------------------
# Payloads (prerendered messages stored on an outbox row)
# ---------------------------------------------------------------------------------------------

def message_to_payload(message: Message) -> dict[str, Any]:
    """The JSON-able form of a message, for ``NewAlert.payload``."""
    return {"subject": message.subject, "text": message.text, "html": message.html,
            "card": dict(message.card)}


def message_from_payload(payload: dict[str, Any]) -> Message:
    """A message stored by ``message_to_payload``; a payload without subject or text is refused."""
    if not isinstance(payload, dict):
        raise TypeError(f"message payload must be an object, got {type(payload).__name__}")
    missing = [k for k in ("subject", "text") if not isinstance(payload.get(k), str) or not payload.get(k)]
    if missing:
        raise ValueError(f"message payload lacks {', '.join(missing)}")
    text = payload["text"]
    html = payload.get("html") or text_to_html(text)
    card = payload.get("card") or simple_card(payload["subject"], text)
    if not isinstance(card, dict):
        raise TypeError("message payload 'card' must be an object")
    return Message(subject=payload["subject"], text=text, html=html, card=card)


def text_to_html(text: str) -> str:
    """A plain text as minimal HTML: paragraphs at blank lines, line breaks kept."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join("<p>" + escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


def simple_card(title: str, text: str) -> dict[str, Any]:
    """An Adaptive Card 1.4 with a heading and the text, for messages that bring no card."""
    return _card([_text_block(title, weight="Bolder", size="Medium"),
                  *(_text_block(p) for p in text.split("\n\n") if p.strip())])


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
# Rendering
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Row:
    """One item in words, shared by the text, HTML and card forms."""

    item: AlertItem
    headline: str  # e.g. "Frist overskredet: opfølgning på indsatsen"
    sentence: str  # the full sentence for the text form
    facts: list[tuple[str, str]]  # label → value, for HTML and card
    urgent: bool  # overdue, escalated or reminded: shown with the attention style on the card


def _sort_key(item: AlertItem) -> tuple:
    # Ascending due time puts the most overdue first, then the nearest due.
    return (ensure_aware(item.due, what=f"alert {item.alert_id} due"), item.case_ref, item.duty.value,
            item.alert_id)


def _is_overdue(item: AlertItem, now: datetime) -> bool:
    return item.due <= now


def _row(item: AlertItem, now: datetime) -> _Row:
    duty = DUTY_NAMES_DA.get(item.duty, item.duty.value)
    due_text = format_due(item.due)
    left = describe_time_left(item.due, now)
    overdue = _is_overdue(item, now)
    kind = AlertKind(item.kind)
    snarest = item.stage.startswith("snarest") or (item.status == Status.EXCEPTED and overdue)

    if kind == AlertKind.ESCALATION:
        headline = f"Frist overskredet: {duty}"
        sentence = (f"Fristen for {duty} i sag {item.case_ref} er overskredet. Den skulle have været "
                    f"overholdt senest {due_text} ({left}).")
    elif kind == AlertKind.REMINDER and snarest:
        headline = f"Skal afsluttes snarest: {duty}"
        sentence = (f"I sag {item.case_ref} er der lavet en foreløbig vurdering, så fristen {due_text} "
                    f"er lovligt fraveget, men undersøgelsen skal nu afsluttes snarest ({left}).")
    elif kind == AlertKind.REMINDER:
        headline = f"Påmindelse, fortsat overskredet: {duty}"
        sentence = (f"Fristen for {duty} i sag {item.case_ref} er stadig overskredet. Den skulle have "
                    f"været overholdt senest {due_text} ({left}).")
    elif overdue:
        headline = f"Frist overskredet: {duty}"
        sentence = (f"Fristen for {duty} i sag {item.case_ref} var {due_text} ({left}).")
    else:
        headline = f"Frist: {duty}"
        sentence = (f"{duty[0].upper()}{duty[1:]} i sag {item.case_ref} skal være sket senest "
                    f"{due_text} ({left}).")
    if item.municipal_policy:
        sentence += f" Bemærk: {MUNICIPAL_NOTE_DA}."
    if item.responsible_name:
        sentence += f" Sagsbehandler: {item.responsible_name}."

    facts = [("Sag", item.case_ref), ("Pligt", duty), ("Frist", due_text), ("Status", left),
             ("Hjemmel", item.citation + (" (kommunal frist)" if item.municipal_policy else ""))]
    if item.responsible_name:
        facts.append(("Sagsbehandler", item.responsible_name))
    return _Row(item=item, headline=headline, sentence=sentence, facts=facts,
                urgent=overdue or kind != AlertKind.WARNING)


def _subject(items: Sequence[AlertItem], now: datetime) -> str:
    first = items[0]
    kinds = {AlertKind(i.kind) for i in items}
    n = len(items)
    if AlertKind.ESCALATION in kinds:
        if n == 1:
            return (f"Overskredet frist i sag {first.case_ref}: "
                    f"{DUTY_NAMES_DA.get(first.duty, first.duty.value)}")
        return f"{n} overskredne frister kræver handling – den ældste var {format_due(first.due)}"
    if kinds == {AlertKind.REMINDER}:
        if n == 1:
            return (f"Påmindelse om frist i sag {first.case_ref}: "
                    f"{DUTY_NAMES_DA.get(first.duty, first.duty.value)}")
        return f"Påmindelse: {n} frister er fortsat overskredet"
    if n == 1:
        word = "Overskredet frist" if _is_overdue(first, now) else "Frist"
        return (f"{word} {format_due(first.due)} i sag {first.case_ref}: "
                f"{DUTY_NAMES_DA.get(first.duty, first.duty.value)}")
    overdue = sum(1 for i in items if _is_overdue(i, now))
    extra = f" ({overdue} overskredet)" if overdue else ""
    return f"{n} frister i dine sager{extra} – den første {format_due(first.due)}"


def _intro(items: Sequence[AlertItem]) -> str:
    kinds = {AlertKind(i.kind) for i in items}
    n = len(items)
    if AlertKind.ESCALATION in kinds:
        return ("Følgende frist er overskredet og kræver din opfølgning som leder:" if n == 1
                else f"Følgende {n} frister er overskredet eller kræver opfølgning:")
    if kinds == {AlertKind.REMINDER}:
        return ("Påmindelse: følgende frist er fortsat ikke overholdt:" if n == 1
                else f"Påmindelse: følgende {n} frister er fortsat ikke overholdt:")
    return ("Følgende frist nærmer sig eller er overskredet:" if n == 1
            else f"Følgende {n} frister nærmer sig eller er overskredet (de mest presserende først):")


def render_alerts(items: Sequence[AlertItem], *, recipient_name: str | None, now: datetime) -> Message:
    """One Danish message grouping the items of one recipient, most urgent first.

    Most urgent = overdue first (the longest overdue on top), then the nearest due time.
    """
    if not items:
        raise ValueError("render_alerts needs at least one alert item")
    now = ensure_aware(now, what="now")
    ordered = sorted(items, key=_sort_key)
    rows = [_row(i, now) for i in ordered]
    subject = _subject(ordered, now)
    greeting = f"Kære {recipient_name}" if recipient_name else "Hej"
    intro = _intro(ordered)

    text_lines = [f"{greeting},", "", intro, ""]
    for n, row in enumerate(rows, 1):
        text_lines.append(f"{n}. {row.headline}")
        text_lines.append(f"   {row.sentence}")
        text_lines.append(f"   Hjemmel: {row.item.citation}")
        text_lines.append(f"   Åbn sagen: {row.item.case_link}")
        text_lines.append("")
    text_lines.append(_FOOTER_DA)
    text = "\n".join(text_lines)

    return Message(subject=subject, text=text, html=_html(greeting, intro, rows),
                   card=_alert_card(subject, greeting, intro, rows))


def _html(greeting: str, intro: str, rows: list[_Row]) -> str:
    # Simple markup: Outlook renders it, and Apprise derives the email's text/plain part from it
    # (see delivery.py), so every fact must also read well with the tags stripped.
    parts = [f"<p>{escape(greeting)},</p>", f"<p>{escape(intro)}</p>"]
    for n, row in enumerate(rows, 1):
        facts = "".join(f"<li>{escape(label)}: {escape(value)}</li>" for label, value in row.facts)
        link = escape(row.item.case_link, quote=True)
        parts.append(
            f"<h3>{n}. {escape(row.headline)}</h3>"
            f"<p>{escape(row.sentence)}</p>"
            f"<ul>{facts}</ul>"
            f'<p><a href="{link}">Åbn sag {escape(row.item.case_ref)} i sagssystemet</a> ({link})</p>'
        )
    parts.append(f"<p><small>{escape(_FOOTER_DA)}</small></p>")
    return "\n".join(parts)


def _text_block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {"$schema": _CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4",
                            "body": body, "msteams": {"width": "full"}}
    if actions:
        card["actions"] = actions
    return card


def _alert_card(subject: str, greeting: str, intro: str, rows: list[_Row]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text_block(subject, weight="Bolder", size="Medium"),
        _text_block(f"{greeting}. {intro}", spacing="Small"),
    ]
    for row in rows[:CARD_MAX_ITEMS]:
        body.append({
            "type": "Container",
            "separator": True,
            "style": "attention" if row.urgent else "default",
            "items": [
                _text_block(row.headline, weight="Bolder"),
                {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in row.facts]},
                {"type": "ActionSet", "actions": [
                    {"type": "Action.OpenUrl", "title": f"Åbn sag {row.item.case_ref}",
                     "url": row.item.case_link}]},
            ],
        })
    if len(rows) > CARD_MAX_ITEMS:
        body.append(_text_block(f"… og {len(rows) - CARD_MAX_ITEMS} frister mere: se e-mailen.",
                                isSubtle=True))
    body.append(_text_block(_FOOTER_DA, isSubtle=True, size="Small"))
    return _card(body)


def render_test_message(*, now: datetime, municipality: str, channel_note: str = "") -> Message:
    """The message of ``watchdog send-test``: says what it is, carries no case data."""
    now = ensure_aware(now, what="now")
    subject = f"Testbesked fra watchdog ({municipality})"
    lines = [
        "Hej,",
        "",
        (f"Dette er en testbesked fra fristovervågningen (watchdog) i {municipality}, sendt "
         f"{format_local(now)}. Den bekræfter, at beskeder kan nå frem ad denne kanal"
         + (f" ({channel_note})" if channel_note else "") + "."),
        "",
        ("Du skal ikke gøre noget. Rigtige advarsler nævner sagsnummer, pligt, frist og et link "
         "til sagen, aldrig CPR-nummer eller navn."),
    ]
    text = "\n".join(lines)
    return Message(subject=subject, text=text, html=text_to_html(text), card=simple_card(subject, text))
