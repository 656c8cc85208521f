"""Stage 5a, rendering for Teams: Adaptive Cards 1.4 for the alert messages.

Pure: no database, no clock, no network. ``render.render_alerts`` arranges a recipient's items
(meetable first, then new breaches, then long-standing ones) and this module turns that
arrangement into a compact card: a heading, per section one short line per item with the case
reference linked, and "og N flere" with the full list's link. The email forms (text and HTML)
are in ``watchdog.render``.
"""

from __future__ import annotations

from typing import Any

# At most this many items are shown on a Teams card: a card over ~28 KB is refused by Teams and
# by Apprise's template reader (35 KB). The email shows more (``alerts.max_items_per_section``).
CARD_MAX_ITEMS = 15

_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def text_block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"$schema": _CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4",
                              "body": body, "msteams": {"width": "full"}}
    if actions:
        result["actions"] = actions
    return result


def simple_card(title: str, text: str) -> dict[str, Any]:
    """An Adaptive Card 1.4 with a heading and the text, for messages that bring no card."""
    return card([text_block(title, weight="Bolder", size="Medium"),
                 *(text_block(p) for p in text.split("\n\n") if p.strip())])


def _md(text: str) -> str:
    # Adaptive Card TextBlocks read Markdown: keep case references and names literal.
    for ch in "\\*_[]()#`>":
        text = text.replace(ch, "\\" + ch)
    return text


def alert_card(arranged, *, footer: str) -> dict[str, Any]:
    """The card of an arranged message (``render.Arranged``): the same order as the email, at
    most ``CARD_MAX_ITEMS`` items, each one line with its case linked."""
    body: list[dict[str, Any]] = [
        text_block(arranged.subject, weight="Bolder", size="Medium"),
        text_block(f"{arranged.greeting}. {arranged.intro}", spacing="Small"),
    ]
    if arranged.counts:
        body.append(text_block(arranged.counts_title, weight="Bolder", separator=True))
        body.append({"type": "FactSet", "facts": [
            {"title": c.name, "value": f"{c.breached} overskredet, {c.due_soon} inden 7 dage"}
            for c in arranged.counts[:CARD_MAX_ITEMS]]})
    room = CARD_MAX_ITEMS
    for section in arranged.sections:
        body.append(text_block(f"{section.title} ({section.total})", weight="Bolder", separator=True))
        shown = section.lines[:room]
        room -= len(shown)
        for line in shown:
            body.append({
                "type": "Container",
                "style": "attention" if line.overdue else "default",
                "selectAction": {"type": "Action.OpenUrl", "url": line.item.case_link,
                                 "title": f"Åbn sag {line.item.case_ref}"},
                "items": [text_block(
                    f"**[{_md(line.item.case_ref)}]({line.item.case_link})** · {_md(line.duty)} · "
                    f"{line.status} · frist {line.due_text} · {_md(line.citation)}"
                    + (f" · rådgiver: {_md(line.worker)}" if line.worker else ""), spacing="Small")],
            })
        hidden = section.total - len(shown)
        if hidden:
            body.append(text_block(f"… og {hidden} flere: se hele listen.", isSubtle=True))
    for group in arranged.backlog:
        body.append(text_block(group.title, weight="Bolder", separator=True))
        body.append({"type": "FactSet", "facts": [
            {"title": name, "value": str(n)} for name, n in (group.by_worker + group.by_duty)[:CARD_MAX_ITEMS]]})
    body.append(text_block(footer, isSubtle=True, size="Small"))
    actions = None
    if arranged.list_url:
        actions = [{"type": "Action.OpenUrl", "title": "Se hele listen", "url": arranged.list_url}]
    return card(body, actions)


def counts_card(title: str, facts: list[tuple[str, str]], *, note: str, link: str | None,
                link_title: str) -> dict[str, Any]:
    """A short card of counts (the weekly digest's): a heading, the facts, a note, a link."""
    result = card([text_block(title, weight="Bolder", size="Medium"),
                   {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]},
                   text_block(note, isSubtle=True, size="Small")])
    if link:
        result["actions"] = [{"type": "Action.OpenUrl", "title": link_title, "url": link}]
    return result
