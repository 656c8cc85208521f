"""What acknowledgements do to the outbox: the end notice, and the hold at delivery.

I/O: the database (``acknowledgement``, ``alert``, the outcome log). Two entry points, one per
round of the service:

- ``handle_ended`` (every poll): each acknowledgement whose end date has passed is handled once
  (a conditional UPDATE, so two replicas never both do it): its end is logged, the deadline is
  planned again (the reminders come back), and, if the deadline is still open, the person who
  acknowledged it gets ONE message saying so (kind ``ack_ended``, key ``ack:{id}:ended:{channel}``).
- ``hold_acknowledged`` (every delivery): an alert that planning made before the acknowledgement
  was committed (the poll of another replica was planning at that very moment) is not sent while
  the acknowledgement is open; it waits, pending, until its end (``next_attempt_at`` = the end), and
  goes then, once, unless the deadline was met meanwhile. Planning, which checks acknowledgements
  itself, never plans such a stage again (its key is in the outbox), so nothing is doubled.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from watchdog.acknowledgements import AckEvent, Acknowledgement, _log, resume_planning, silences
from watchdog.casestore import Case, Worker
from watchdog.clock import ensure_aware, format_due, to_local
from watchdog.db import session_scope
from watchdog.deadlines import Deadline
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, NewAlert, enqueue
from watchdog.rules.types import Status

log = logging.getLogger(__name__)

ENDED_STAGE = "ack_ended"
FOOTER_DA = ("Beskeden er sendt automatisk af watchdog (fristovervågning). Den indeholder med vilje "
             "hverken CPR-nummer eller navn på barnet: åbn sagen via linket.")


def ended_key(ack_id: int, channel: Channel) -> str:
    return f"ack:{ack_id}:ended:{Channel(channel).value}"


def handle_ended(session: Session, *, now: datetime, settings) -> int:
    """Handle every acknowledgement whose end has passed; returns how many end messages were
    enqueued. Does not commit."""
    now = ensure_aware(now, what="now")
    due = session.exec(select(Acknowledgement).where(
        Acknowledgement.end_handled_at.is_(None), Acknowledgement.ends_at <= now)
        .order_by(Acknowledgement.id)).all()
    alerts: list[NewAlert] = []
    for ack in due:
        taken = session.execute(
            update(Acknowledgement).where(Acknowledgement.id == ack.id, Acknowledgement.end_handled_at.is_(None))
            .values(end_handled_at=now, open_deadline_id=None).execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            continue  # another replica handled it
        deadline = session.get(Deadline, ack.deadline_id)
        still_open = Status(deadline.status) in (Status.OPEN, Status.BREACHED)
        _log(session, deadline, AckEvent.ENDED, at=now,
             detail=f"jeg er på sagen udløbet efter {ack.ends_on:%d-%m-%Y}; fristen er "
                    + ("stadig ikke overholdt, påmindelserne er genoptaget" if still_open else "lukket"))
        resume_planning(session, ack, now=now)
        if still_open:
            alerts += _end_notice(session, ack, deadline, now=now, settings=settings)
    return enqueue(session, alerts, now=now) if alerts else 0


def _end_notice(session: Session, ack: Acknowledgement, deadline: Deadline, *, now: datetime,
                settings) -> list[NewAlert]:
    from watchdog import render
    from watchdog.reports.digest import case_link_for

    worker = session.get(Worker, ack.worker_id)
    case = session.get(Case, deadline.case_id)
    if worker is None or not worker.active:
        return []
    duty = render.DUTY_NAMES_DA.get(deadline.duty, str(deadline.duty))
    link = case_link_for(case.ext_id, case.link, settings)
    subject = f"Din markering \"jeg er på sagen\" er udløbet: sag {case.ext_id}"
    # The reason is left out on purpose: it is free text, and a message must never carry a
    # child's name (the page shows it to those who may see the case).
    text = "\n".join([
        f"Kære {worker.name},", "",
        (f"Du markerede den {to_local(ack.created_at):%d-%m-%Y}, at du var på sagen "
         f"{case.ext_id} ({duty}), til og med {ack.ends_on:%d-%m-%Y}. Markeringen er nu udløbet, og "
         f"fristen er stadig ikke overholdt: den er {format_due(deadline.due)} "
         f"({render.describe_time_left(deadline.due, now)})."), "",
        ("Påmindelserne om fristen er genoptaget for alle, der får dem. En lovbestemt frist kan ikke "
         "sættes på pause; du kan markere sagen igen på siden, hvis du stadig er i gang."), "",
        f"Åbn sagen: {link}", "",
        FOOTER_DA,
    ])
    message = render.Message(subject=subject, text=text, html=render.text_to_html(text),
                             card=render.simple_card(subject, text))
    if render.message_sensitive(message):
        log.error("acknowledgement %s: end notice not sent: a CPR-like number in it", ack.id)
        return []
    payload = render.message_to_payload(message)
    channels = [(Channel.EMAIL, worker.email)]
    if worker.teams_workflow_url:
        channels.append((Channel.TEAMS, worker.teams_workflow_url))
    return [NewAlert(key=ended_key(ack.id, ch), kind=AlertKind.ACK_ENDED, stage=ENDED_STAGE,
                     recipient_address=address, channel=ch, send_after=now, deadline_id=deadline.id,
                     recipient_worker_id=worker.id, payload=payload)
            for ch, address in channels if address]


def hold_acknowledged(engine: Engine, group: list[Alert], *, now: datetime, worker_name: str) -> list[Alert]:
    """Put back the claimed alerts that an open acknowledgement silences, due at its end; return
    the rest (to send). An end notice whose deadline closed meanwhile is cancelled."""
    from watchdog.acknowledgements import active_until
    from watchdog.outbox import record_cancelled

    ids = {a.deadline_id for a in group if a.deadline_id is not None}
    if not ids:
        return group
    keep: list[Alert] = []
    with session_scope(engine) as session:
        until = active_until(session, ids, now=now)
        for alert in group:
            if AlertKind(alert.kind) == AlertKind.ACK_ENDED:
                deadline = session.get(Deadline, alert.deadline_id)
                if deadline is not None and Status(deadline.status) not in (Status.OPEN, Status.BREACHED):
                    row = session.get(Alert, alert.id)
                    record_cancelled(session, row, reason="the deadline closed before the end notice went out")
                    continue
            end = until.get(alert.deadline_id)
            if end is None or not silences(alert.kind, alert.stage, until=end, now=now):
                keep.append(alert)
                continue
            session.execute(update(Alert).where(
                Alert.id == alert.id, Alert.state == AlertState.CLAIMED, Alert.claimed_by == worker_name,
            ).values(state=AlertState.PENDING, next_attempt_at=end, claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False))
            log.info("alert %s held until %s: the deadline is acknowledged", alert.id, end.isoformat())
    return keep
