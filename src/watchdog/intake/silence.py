"""Stage 1 intake, watched: alert the leaders when no notification has come in for too long.

I/O: reads ``notification`` and ``worker``, enqueues ``INTAKE_SILENCE`` alerts in the outbox.
``now`` comes in; the poll (``watchdog.service.poll``) calls ``check_intake_silence`` each round.

A stuck intake is itself a risk: in 2022 a municipality lost 82 notifications in an unread mailbox
for more than a month, and no deadline warning can fire for a notification nobody registered.

The check is for the whole municipality, not per team: notifications are received centrally and
assigned to teams afterwards, so one small team without notifications for a few days is normal,
while no notification at all is the symptom of a broken mailbox or export. "Silent" means: at
least ``intake.silence_working_days`` whole working days (Monday–Friday, not public holidays,
Grundlovsdag, 24 or 31 December) have passed since the local date of the newest
``Notification.received_at``. A database without any notification (a new installation) is not
silent. Each active leader gets one alert per silence period (the key holds the date of the last
notification), sent at the start of the next working hours if the check runs outside them.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from watchdog.casestore import Notification, Worker, WorkerRole
from watchdog.clock import LOCAL_TZ, format_local, local_date, to_local
from watchdog.outbox import AlertKind, Channel, NewAlert, enqueue
from watchdog.render import Message, message_to_payload, simple_card, text_to_html
from watchdog.rules.calendar import is_non_working_day

log = logging.getLogger(__name__)

STAGE = "intake_silence"


def working_days_between(first: date, last: date) -> int:
    """Whole working days strictly after ``first`` and strictly before ``last``."""
    day, count = first + timedelta(days=1), 0
    while day < last:
        if not is_non_working_day(day):
            count += 1
        day += timedelta(days=1)
    return count


def office_time(now: datetime, settings) -> datetime:
    """``now`` if it is within working hours on a working day, else the start of the next ones."""
    start, end = settings.alerts.working_hours_start, settings.alerts.working_hours_end
    local = to_local(now)
    if not is_non_working_day(local.date()) and start <= local.hour < end:
        return now
    day = local.date() if local.hour < start else local.date() + timedelta(days=1)
    while is_non_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(start, 0), tzinfo=LOCAL_TZ).astimezone(now.tzinfo)


def silence_message(last_received: datetime, working_days: int, municipality: str) -> Message:
    """The Danish alert to a leader. No case reference is needed: it is about the intake."""
    subject = f"Ingen underretninger registreret i {working_days} arbejdsdage"
    text = (
        f"Der er ikke registreret nogen underretning i {municipality} siden "
        f"{format_local(last_received)} ({working_days} arbejdsdage uden nye underretninger).\n\n"
        "Det kan betyde, at underretninger ligger ubehandlet et sted: i en funktionspostkasse, "
        "i digital post, hos en medarbejder, eller at overførslen fra sagssystemet til "
        "fristovervågningen er gået i stå. En underretning skal vurderes inden 24 timer.\n\n"
        "Tjek venligst postkasser og indberetninger i dag, og at nye underretninger bliver "
        "registreret i sagssystemet."
    )
    return Message(subject=subject, text=text, html=text_to_html(text), card=simple_card(subject, text))


def check_intake_silence(session: Session, *, now: datetime, settings) -> int:
    """Enqueue one alert per leader and channel when the intake has been silent too long.

    Returns how many alerts were new (an alert already enqueued for this silence is not repeated).
    """
    last = session.exec(select(func.max(Notification.received_at))).one()
    if last is None:
        return 0
    if isinstance(last, str):  # SQLite's max() bypasses the column type: stored UTC text
        last = datetime.fromisoformat(last)
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    quiet_days = working_days_between(local_date(last), local_date(now))
    if quiet_days < settings.intake.silence_working_days:
        return 0
    leaders = session.exec(select(Worker).where(Worker.role == WorkerRole.LEADER, Worker.active)
                           .order_by(Worker.id)).all()
    if not leaders:
        log.warning("intake silent for %d working days, but there is no active leader to tell", quiet_days)
        return 0
    payload = message_to_payload(silence_message(last, quiet_days, settings.municipality))
    send_after = office_time(now, settings)
    period = local_date(last).isoformat()
    alerts = []
    for leader in leaders:
        channels = [(Channel.EMAIL, leader.email)]
        if leader.teams_workflow_url:
            channels.append((Channel.TEAMS, leader.teams_workflow_url))
        for channel, address in channels:
            alerts.append(NewAlert(
                key=f"intake_silence:{period}:{leader.id}:{channel.value}", kind=AlertKind.INTAKE_SILENCE,
                stage=STAGE, recipient_address=address, channel=channel, send_after=send_after,
                recipient_worker_id=leader.id, payload=payload,
            ))
    inserted = enqueue(session, alerts, now=now)
    if inserted:
        log.warning("intake silent since %s (%d working days): %d alerts to leaders",
                    format_local(last), quiet_days, inserted)
    return inserted
