"""Operator alerts: what IT operations must hear about, through the same outbox as every alert.

I/O: the database (the outbox, ``recompute_failure``). Dead letters (``service``) and cases whose
deadlines cannot be computed (``deadline_marks``) go to every ``delivery.ops_urls`` entry (a Teams
workflow URL, or ``mailto://MAILBOX`` through the ``[smtp]`` relay), retried and kept like any
alert. Messages name alerts by id and cases by reference only.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session

from watchdog import deadline_marks, outbox, render
from watchdog.clock import format_local
from watchdog.outbox import AlertKind, Channel, NewAlert
from watchdog.settings_urls import mask_url, parse_ops_url

log = logging.getLogger(__name__)


def ops_recipient(url: str) -> tuple[str, Channel] | None:
    """Where an operator URL points, in the terms of ``delivery.Recipient`` (see parse_ops_url)."""
    target = parse_ops_url(url)
    if target is None:
        return None
    address, kind = target
    return address, Channel.TEAMS if kind == "teams" else Channel.EMAIL


def enqueue(session: Session, settings, *, key: str, stage: str, payload: dict, now: datetime,
            stamp: str | None = None) -> int:
    """One operator alert to every ``delivery.ops_urls`` entry, through the outbox. The key is
    ``key`` and ``stamp`` (default: the instant) per recipient."""
    stamp = stamp or now.strftime("%Y%m%dT%H%M%S%f")
    alerts = []
    for url in settings.delivery.ops_urls:
        target = ops_recipient(url)
        if target is None:
            log.error("delivery.ops_urls: cannot send an operator alert to %s (use a Teams workflow "
                      "URL or mailto://MAILBOX)", mask_url(url))
            continue
        address, channel = target
        alerts.append(NewAlert(key=f"{key}:{stamp}:{address}:{channel.value}"[:300], kind=AlertKind.OPS,
                               stage=stage, recipient_address=address, channel=channel,
                               send_after=now, payload=payload))
    return outbox.enqueue(session, alerts, now=now)


def report_recompute_failures(session: Session, settings, *, now: datetime) -> int:
    """Tell the operators, once per failure, about cases whose deadlines cannot be computed."""
    new = deadline_marks.list_failures(session, unalerted_only=True, limit=50)
    if not new:
        return 0
    deadline_marks.mark_alerted(session, [f.case_id for f in new], now=now)
    if not settings.delivery.ops_urls:
        return 0
    payload = render.message_to_payload(recompute_failure_message(new, now=now))
    # Keyed by the failures, not the poll: two replicas that see the same new failures store one alert.
    ids = "-".join(str(f.case_id) for f in new[:10])
    newest = max(f.first_failed_at for f in new)
    return enqueue(session, settings, key=f"ops:recompute:{ids}", stage="recompute_failure", payload=payload,
                   now=now, stamp=newest.strftime("%Y%m%dT%H%M%S%f"))


def recompute_failure_message(failures: list[deadline_marks.FailureView], *, now: datetime) -> render.Message:
    """The operator's message: which cases, the exception, what to do. Case references only."""
    lines = [f"- sag {f.case_ref}: {f.error[:300]}" for f in failures]
    subject = f"watchdog: fristerne i {len(failures)} sag(er) kan ikke beregnes"
    text = "\n".join([
        f"{subject} ({format_local(now)}).", "", *lines, "",
        "De øvrige sager beregnes som normalt; disse prøves igen ved hver kørsel. Ret sagens data i "
        "fagsystemet (typisk en dato uden for et muligt interval), og importér den igen. "
        "Se `watchdog health`.",
    ])
    return render.Message(subject=subject, text=text, html=render.text_to_html(text),
                          card=render.simple_card(subject, text))
