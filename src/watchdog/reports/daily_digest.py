"""The caseworker's daily digest: for a worker who chose it (on the web's settings page), one
message a working day at the chosen hour instead of a message each delivery round.

I/O: the database (table ``worker_preference``, the deadlines, the outbox). Building the message
is pure (``render_daily_digest``).

- ``set_daily_digest`` stores the choice (an hour, or None for a message each round).
- ``enqueue_daily_digests`` (every poll): on a working day, once the worker's hour has come, one
  digest per worker, day and channel (key ``daily:{worker}:{yyyy-mm-dd}:{channel}``) with every
  open deadline due within 14 days and every open breach of the worker's cases (and of the cases
  of a caseworker they substitute for today). Nothing to tell: no message.
- ``absorb_into_digest`` (every delivery): a deadline alert to such a worker about a deadline the
  digest covers is not sent on its own; it is cancelled with the reason "in the daily digest".
  The 24-hour assessment's alerts are never absorbed: they still go out at once, at any hour.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from watchdog.casestore import Absence, Case, Worker
from watchdog.clock import LOCAL_TZ, ensure_aware, format_due, local_date
from watchdog.db import session_scope
from watchdog.deadlines import Deadline
from watchdog.outbox import Alert, AlertKind, Channel, NewAlert, enqueue
from watchdog.reports.digest import DigestDeadline, case_link_for
from watchdog.rules.types import Duty, Status

log = logging.getLogger(__name__)

HORIZON_DAYS = 14
DAILY_STAGE = "daily"
#: The hours a worker may choose (local time): the working day.
DIGEST_HOURS = tuple(range(6, 18))
_DEADLINE_KINDS = (AlertKind.WARNING, AlertKind.ESCALATION, AlertKind.REMINDER)
FOOTER_DA = ("Den daglige oversigt er sendt automatisk af watchdog (fristovervågning), fordi du har valgt "
             "den. Den nævner sager ved sagsnummer og indeholder med vilje hverken CPR-nummer eller navn "
             "på barnet. Advarsler om 24-timers-vurderingen får du stadig med det samme.")


class WorkerPreference(SQLModel, table=True):
    """A worker's choices on the web's settings page."""

    __tablename__ = "worker_preference"
    worker_id: int = Field(foreign_key="worker.id", primary_key=True)
    # The local hour of the daily digest; None = a message each delivery round (the default).
    daily_digest_hour: int | None = None
    updated_at: datetime


def daily_digest_hour(session: Session, worker_id: int) -> int | None:
    pref = session.get(WorkerPreference, worker_id)
    return pref.daily_digest_hour if pref is not None else None


def set_daily_digest(session: Session, *, worker_id: int, hour: int | None, now: datetime) -> WorkerPreference:
    """Choose a daily digest at ``hour`` (local), or None for a message each round. Does not commit."""
    if hour is not None and hour not in DIGEST_HOURS:
        from watchdog.errors import WatchdogError

        raise WatchdogError(f"Vælg et klokkeslæt mellem kl. {DIGEST_HOURS[0]} og kl. {DIGEST_HOURS[-1]}.")
    pref = session.get(WorkerPreference, worker_id) or WorkerPreference(worker_id=worker_id, updated_at=now)
    pref.daily_digest_hour = hour
    pref.updated_at = ensure_aware(now, what="now")
    session.add(pref)
    session.flush()
    return pref


def digest_key(worker_id: int, day: date, channel: Channel) -> str:
    return f"daily:{worker_id}:{day.isoformat()}:{Channel(channel).value}"


@dataclass(frozen=True)
class DailyItem(DigestDeadline):
    """A deadline of the daily digest: the weekly digest's item, and whether someone is on it."""

    acknowledged_until: date | None = None


def _covered(session: Session, worker_id: int, today: date):
    """The condition on Deadline for the deadlines a worker's digest covers: their own, and those
    of a caseworker they substitute for today."""
    for_whom = [worker_id] + list(session.execute(select(Absence.worker_id).where(
        Absence.substitute_id == worker_id, Absence.starts_on <= today, Absence.ends_on >= today)).scalars())
    return Deadline.responsible_worker_id.in_(for_whom)


def load_daily_items_for(session: Session, worker_ids, *, now: datetime, settings) -> dict[int, list[DailyItem]]:
    """Each worker's digest items (their own deadlines and those of whom they substitute for
    today), for many workers with a fixed number of queries (per 1,000 workers), not per worker."""
    from watchdog.acknowledgements import list_acknowledgements
    from watchdog.deadlines import chunks

    today = local_date(now)
    horizon = now + timedelta(days=HORIZON_DAYS)
    workers = sorted(set(worker_ids))
    for_whom: dict[int, set[int]] = {w: {w} for w in workers}
    for part in chunks(workers, 1000):
        for absent, substitute in session.execute(select(Absence.worker_id, Absence.substitute_id).where(
                Absence.substitute_id.in_(part), Absence.starts_on <= today, Absence.ends_on >= today)):
            for_whom[substitute].add(absent)
    responsible = sorted(set().union(*for_whom.values())) if for_whom else []
    rows = []
    for part in chunks(responsible, 1000):
        rows += session.execute(
            select(Deadline.id, Deadline.responsible_worker_id, Case.ext_id, Case.link, Deadline.duty,
                   Deadline.citation, Deadline.due, Deadline.status, Deadline.municipal_policy)
            .join(Case, Case.id == Deadline.case_id)
            .where(Deadline.responsible_worker_id.in_(part),
                   or_(Deadline.status == Status.BREACHED, (Deadline.status == Status.OPEN) & (Deadline.due <= horizon)))
        ).all()
    acked = {a.deadline_id: a.ends_on for a in list_acknowledgements(session, now=now)} if rows else {}
    by_responsible: dict[int, list[DailyItem]] = defaultdict(list)
    for r in rows:
        by_responsible[r.responsible_worker_id].append(DailyItem(
            deadline_id=r.id, case_ref=r.ext_id, case_link=case_link_for(r.ext_id, r.link, settings),
            duty=Duty(r.duty), citation=r.citation, due=r.due, status=Status(r.status), worker_name=None,
            municipal_policy=r.municipal_policy, acknowledged_until=acked.get(r.id)))
    return {w: sorted((i for whom in for_whom[w] for i in by_responsible.get(whom, ())),
                      key=lambda i: (i.due, i.deadline_id)) for w in workers}


def load_daily_items(session: Session, worker_id: int, *, now: datetime, settings) -> list[DailyItem]:
    """One worker's digest items (``load_daily_items_for`` that worker)."""
    return load_daily_items_for(session, [worker_id], now=now, settings=settings)[worker_id]


def render_daily_digest(name: str, items: list[DailyItem], *, now: datetime):
    """The digest as a Danish message: breaches first, then what is due soonest. Pure."""
    from watchdog.render import (
        DUTY_NAMES_DA,
        Message,
        describe_time_left,
        simple_card,
        text_to_html,
    )

    breaches = [i for i in items if i.status == Status.BREACHED or i.due <= now]
    coming = [i for i in items if i not in breaches]
    subject = (f"Dagens frister {local_date(now):%d-%m-%Y}: {len(breaches)} overskredet, "
               f"{len(coming)} de næste {HORIZON_DAYS} dage")

    def line(i: DailyItem) -> str:
        ack = f" Du/I er på sagen til og med {i.acknowledged_until:%d-%m-%Y}." if i.acknowledged_until else ""
        policy = " (kommunal frist)" if i.municipal_policy else ""
        return (f"- Sag {i.case_ref}: {DUTY_NAMES_DA.get(i.duty, i.duty.value)} ({i.citation}){policy}, frist "
                f"{format_due(i.due)} – {describe_time_left(i.due, now)}.{ack}\n  Åbn sagen: {i.case_link}")

    text = [f"Kære {name},", "", "Her er dagens overblik over dine frister.", "",
            f"1. Overskredne frister, der stadig er åbne: {len(breaches)}", *(line(i) for i in breaches),
            *([] if breaches else ["Ingen."]), "",
            f"2. Frister de næste {HORIZON_DAYS} dage: {len(coming)}", *(line(i) for i in coming),
            *([] if coming else ["Ingen."]), "", FOOTER_DA]
    body = "\n".join(text)
    return Message(subject=subject, text=body, html=text_to_html(body), card=simple_card(subject, body))


def enqueue_daily_digests(session: Session, *, now: datetime, settings) -> int:
    """Enqueue today's digest for every worker whose hour has come and who has not got it yet.
    Returns how many were new. Does not commit."""
    from watchdog.render import message_sensitive, message_to_payload
    from watchdog.rules.calendar import is_non_working_day

    now = ensure_aware(now, what="now")
    today = local_date(now)
    if is_non_working_day(today):
        return 0
    due: list[tuple[Worker, datetime, list[tuple[Channel, str]]]] = []
    for pref, worker in session.execute(
            select(WorkerPreference, Worker).join(Worker, Worker.id == WorkerPreference.worker_id)
            .where(WorkerPreference.daily_digest_hour.is_not(None), Worker.active == True)
            .order_by(Worker.id)).all():
        send_at = datetime.combine(today, time(pref.daily_digest_hour), tzinfo=LOCAL_TZ).astimezone(now.tzinfo)
        if now >= send_at:
            channels = [(Channel.EMAIL, worker.email)] + (
                [(Channel.TEAMS, worker.teams_workflow_url)] if worker.teams_workflow_url else [])
            due.append((worker, send_at, channels))
    keys = [digest_key(worker.id, today, ch) for worker, _, channels in due for ch, _ in channels]
    have: set[str] = set()
    for start in range(0, len(keys), 500):
        have.update(session.exec(select(Alert.key).where(Alert.key.in_(keys[start:start + 500]))).all())
    todo = [(worker, send_at, missing) for worker, send_at, channels in due
            if (missing := [(ch, addr) for ch, addr in channels if digest_key(worker.id, today, ch) not in have and addr])]
    items = load_daily_items_for(session, [w.id for w, _, _ in todo], now=now, settings=settings) if todo else {}
    new: list[NewAlert] = []
    for worker, send_at, missing in todo:
        if not items[worker.id]:
            continue  # nothing to tell: no message (no noise)
        message = render_daily_digest(worker.name, items[worker.id], now=now)
        if message_sensitive(message):
            log.error("daily digest of worker %s not sent: a CPR-like number in it", worker.ext_id)
            continue
        payload = message_to_payload(message)
        new += [NewAlert(key=digest_key(worker.id, today, ch), kind=AlertKind.DIGEST, stage=DAILY_STAGE,
                         recipient_address=addr, channel=ch, send_after=send_at, recipient_worker_id=worker.id,
                         payload=payload)
                for ch, addr in missing]
    return enqueue(session, new, now=now) if new else 0


def absorb_into_digest(engine: Engine, group: list[Alert], *, now: datetime) -> list[Alert]:
    """Cancel the claimed deadline alerts that the recipient's daily digest covers; return the
    rest (to send). A group is one recipient's alerts on one channel."""
    from watchdog.outbox import record_cancelled

    first = group[0] if group else None
    if first is None or first.recipient_worker_id is None or not any(
            AlertKind(a.kind) in _DEADLINE_KINDS for a in group):
        return group
    with session_scope(engine) as session:
        if daily_digest_hour(session, first.recipient_worker_id) is None:
            return group
        ids = sorted({a.deadline_id for a in group if a.deadline_id is not None})
        covered = set(session.execute(select(Deadline.id).where(
            Deadline.id.in_(ids), Deadline.duty != Duty.ASSESSMENT_24H,
            _covered(session, first.recipient_worker_id, local_date(now)))).scalars())
        keep = []
        for alert in group:
            if AlertKind(alert.kind) in _DEADLINE_KINDS and alert.deadline_id in covered:
                record_cancelled(session, session.get(Alert, alert.id),
                                 reason="in the daily digest: the recipient chose one message a day")
            else:
                keep.append(alert)
    return keep
