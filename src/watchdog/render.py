"""Stage 5a, rendering: the Danish message a caseworker or leader receives about their deadlines.

Pure: no database, no clock, no network (the email HTML comes from the package's templates,
``templates/email/``, through the shared ``watchdog.templating`` environment). Input: the alert
items of one recipient (built by the service from the deadline rows), a ``MessageContext`` (when
the recipient last had a message, a leader's counts per caseworker, the full list's link) and
``now``. Output: one ``Message`` with a subject, a plain text, an HTML body (email) and an
Adaptive Card 1.4 (Teams, ``watchdog.cards``).

The order is what a person can still act on (DESIGN.md invariant 8): first the deadlines not yet
breached, soonest first; then the breaches new since the recipient's last message; then the
long-standing ones, as compact lines up to a cap and "og N flere" with a link. A leader's
message leads with counts per caseworker; a backlog found at go-live is counted, not listed.
Every item is one line: duty, case (linked), due time, time left or overdue, paragraph.

What a message may carry (DESIGN.md invariant 5): the case reference, the duty, the paragraph,
the due time, how long is left, the case-system link, and for leaders the responsible
caseworker's name. Never a CPR number or a child's name: the items do not even have fields for
them, and ``message_sensitive`` (``watchdog.sensitive``) is the net that the transport checks every
message against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from html import escape
from typing import Any

from watchdog import cards
from watchdog.arrangement import (  # noqa: F401 - the vocabulary is part of this module's API
    DUTY_NAMES_DA, MEETABLE, MUNICIPAL_NOTE_DA, AlertItem, Arranged, MessageContext, Section, WorkerCount,
    arrange, describe_span, describe_time_left,
)
from watchdog.cards import CARD_MAX_ITEMS, simple_card  # noqa: F401 - part of this module's API
from watchdog.clock import ensure_aware, format_local
from watchdog.templating import render as render_template
from watchdog.sensitive import contains_cpr, find_cpr, message_sensitive  # noqa: F401 (the net)

BACKLOG_NOTE_DA = ("Fristerne var overskredet længe, før fristovervågningen begyndte at følge dem, og "
                   "sendes derfor ikke enkeltvis. Rådgiverne får påmindelser om dem som normalt.")

_FOOTER_DA = (
    "Beskeden er sendt automatisk af watchdog (fristovervågning). Den indeholder med vilje hverken "
    "CPR-nummer eller navn på barnet: åbn sagen via linket."
)


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
    grouped message and send the others (see ``delivery_round._deliver_one_message``).
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


# ---------------------------------------------------------------------------------------------
# Rendering: one message per recipient, in the order of ``watchdog.arrangement``
# ---------------------------------------------------------------------------------------------

def render_alerts(items: Sequence[AlertItem], *, recipient_name: str | None, now: datetime,
                  context: MessageContext | None = None) -> Message:
    """One Danish message grouping the items of one recipient: what can still be met first.

    The text part reads on its own (one line per item); the HTML is a table per section with
    headers, status as words; the card is the same order, shorter (``watchdog.cards``).
    """
    arranged = arrange(items, recipient_name=recipient_name, now=now, context=context)
    return Message(subject=arranged.subject, text=_text(arranged),
                   html=render_template("email/alerts.html", m=arranged, footer=_FOOTER_DA,
                                         backlog_note=BACKLOG_NOTE_DA),
                   card=cards.alert_card(arranged, footer=_FOOTER_DA))


def more_text(hidden: int, url: str | None) -> str:
    """'og 12 flere: https://…' (or where to find them when the web app has no address)."""
    return f"og {hidden} flere: {url}" if url else f"og {hidden} flere (se dem i fristovervågningen)"


def _text(m: Arranged) -> str:
    out = [f"{m.greeting},", "", m.intro, ""]

    def section(s: Section) -> None:
        out.append(f"{s.title} ({s.total}):")
        for line in s.lines:
            worker = f" – rådgiver: {line.worker}" if line.worker else ""
            out.append(f"- Sag {line.item.case_ref}: {line.duty} – frist {line.due_text} – {line.status} – "
                       f"{line.citation}{worker} – {line.item.case_link}")
        if s.hidden:
            out.append(f"  {more_text(s.hidden, m.list_url)}")
        out.append("")

    sections = list(m.sections)
    if sections and sections[0].key == MEETABLE:
        section(sections.pop(0))
    if m.counts:
        out.append(f"{m.counts_title}:")
        out.extend(f"- {c.name}: {c.breached} overskredet, {c.due_soon} inden for 7 dage" for c in m.counts)
        if m.counts_hidden:
            out.append(f"  {more_text(m.counts_hidden, m.list_url)} rådgivere")
        out.append("")
    for s in sections:
        section(s)
    for group in m.backlog:
        out.append(f"{group.title}.")
        out.append(BACKLOG_NOTE_DA)
        out.append("Pr. rådgiver: " + ", ".join(f"{name} {n}" for name, n in group.by_worker) + ".")
        out.append("Pr. pligt: " + ", ".join(f"{name} {n}" for name, n in group.by_duty) + ".")
        out.append("")
    if m.list_url:
        out.append(f"Hele listen: {m.list_url}")
        out.append("")
    out.append(_FOOTER_DA)
    return "\n".join(out)



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
