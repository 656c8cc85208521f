"""Acknowledgements ("jeg er på sagen"): a person says they are on a deadline, with a reason and
an end date, and the reminders about it stop until then. Beside stage 3 (alert planning).

I/O: the database (table ``acknowledgement``; events appended to the outcome log), except the
rule (``check_acknowledgement``) and the planning filter (``silences``, ``next_look``), which are
pure. The end notices and the delivery hold are in ``watchdog.acknowledgement_alerts``.

What an acknowledgement changes, and what it does not:

- Until its end, planning plans no warning, reminder or repeat
  escalation about the deadline, for anybody (``silences``). The first escalation at breach still
  goes to the leader: a breach of a statutory deadline is a fact the leader must learn of, and the
  team page shows who is on it. The end is the opening of the first working day after the chosen
  end date (``resume_at``): what was held back comes back in working hours, not at midnight.
- The deadline's due time and status, the outcome log's status events and every report stay as
  they are: a statutory deadline cannot be paused, and the barometer does not know
  acknowledgements exist.
- One open acknowledgement per deadline (a unique column that is set while it is open): two people
  acknowledging at once get one acknowledgement and one clear refusal, never two.
- Each acknowledgement and its end is an outcome-log event (who, when, reason) on the case page.

Functions take the session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Field, Session, SQLModel, select

from watchdog.casestore import Case, Worker, WorkerRole
from watchdog.clock import LOCAL_TZ, ensure_aware, local_date
from watchdog.deadlines import Deadline, OutcomeEvent
from watchdog.errors import WatchdogError
from watchdog.outbox import AlertKind
from watchdog.rules.types import Duty, Status

REASON_MAX = 500
#: The stage of the one escalation an acknowledgement does not silence (planning's first step).
FIRST_ESCALATION_STAGE = "breach"


class AckEvent:
    """Outcome-log kinds (``OutcomeEvent.kind``) of acknowledgements."""

    ACKNOWLEDGED = "acknowledged"
    ENDED = "ack_ended"


class Acknowledgement(SQLModel, table=True):
    __tablename__ = "acknowledgement"
    id: int | None = Field(default=None, primary_key=True)
    deadline_id: int = Field(foreign_key="deadline.id", index=True)
    worker_id: int = Field(foreign_key="worker.id", index=True)  # who said "jeg er på sagen"
    reason: str = Field(max_length=REASON_MAX)
    created_at: datetime
    ends_on: date  # the last local day it holds (inclusive)
    ends_at: datetime = Field(index=True)  # reminders resume at this instant (see resume_at)
    ended_at: datetime | None = None  # ended early by hand
    ended_by_id: int | None = Field(default=None, foreign_key="worker.id")
    # When its end was handled (by hand, or by the poll once ``ends_at`` passed; the "it ended and
    # the deadline is still open" message is enqueued then). None = still to handle.
    end_handled_at: datetime | None = Field(default=None, index=True)
    # The deadline's id while the acknowledgement is open, NULL after: unique, so a deadline has at
    # most one open acknowledgement even when two people press the button at the same moment.
    open_deadline_id: int | None = Field(default=None, unique=True)


class AcknowledgementRefused(WatchdogError):
    """The acknowledgement (or its end) was refused. ``errors`` maps a form field to a Danish
    message saying how to fix it (for the page's error summary); ``str()`` joins them."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


# --------------------------------------------------------------------------------------------
# The rule (pure)

def check_acknowledgement(reason: str | None, ends_on: date | None, *, today: date, max_days: int
                          ) -> dict[str, str]:
    """The problems of an acknowledgement's reason and end date, by field; empty when it is fine.

    The reason is required, at most ``REASON_MAX`` characters and must not hold a CPR-like number
    (it is shown on pages and stored in the outcome log). The end date is required, not before
    ``today`` and at most ``max_days`` days after it.
    """
    from watchdog.render import find_sensitive

    errors: dict[str, str] = {}
    text = (reason or "").strip()
    if not text:
        errors["reason"] = "Skriv en begrundelse: hvad gør du ved sagen?"
    elif len(text) > REASON_MAX:
        errors["reason"] = f"Begrundelsen må højst være {REASON_MAX} tegn (den er {len(text)})."
    elif find_sensitive(text):
        errors["reason"] = ("Begrundelsen ser ud til at indeholde et CPR-nummer. Skriv den uden "
                            "CPR-nummer og uden barnets navn.")
    latest = today + timedelta(days=max_days)
    if ends_on is None:
        errors["ends_on"] = "Skriv en slutdato som dd-mm-åååå."
    elif ends_on < today:
        errors["ends_on"] = (f"Slutdatoen {ends_on:%d-%m-%Y} er overskredet. Vælg en dato fra i dag "
                             f"({today:%d-%m-%Y}) til og med {latest:%d-%m-%Y}.")
    elif ends_on > latest:
        errors["ends_on"] = (f"Slutdatoen må højst ligge {max_days} dage fremme, altså senest "
                             f"{latest:%d-%m-%Y}.")
    return errors


def resume_at(ends_on: date, *, start_hour: int) -> datetime:
    """When an acknowledgement to ``ends_on`` (inclusive) ends: the opening (``start_hour``, local)
    of the first working day after it. Pure."""
    from watchdog.rules.calendar import is_non_working_day

    day = ends_on + timedelta(days=1)
    while is_non_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(start_hour), tzinfo=LOCAL_TZ).astimezone(UTC)


def silences(kind: AlertKind | str, stage: str, *, until: datetime | None, now: datetime) -> bool:
    """Whether an acknowledgement open until ``until`` keeps planning from planning this stage
    now: every warning, reminder and repeat escalation, but not the first escalation at breach.
    Pure; planning calls it for each stage it would plan."""
    if until is None or now >= until:
        return False
    kind = AlertKind(kind)
    if kind in (AlertKind.WARNING, AlertKind.REMINDER):
        return True
    return kind == AlertKind.ESCALATION and stage != FIRST_ESCALATION_STAGE


def next_look(next_at: datetime | None, *, until: datetime | None, now: datetime) -> datetime | None:
    """When planning must look at an acknowledged deadline again: at its next stage or at the
    acknowledgement's end, whichever comes first (at the end, what was silenced comes back)."""
    if until is None or now >= until:
        return next_at
    return until if next_at is None else min(next_at, until)


# --------------------------------------------------------------------------------------------
# Storing

@dataclass(frozen=True)
class AckView:
    """An acknowledgement as a page or a digest shows it."""

    id: int
    deadline_id: int
    case_ref: str
    duty: Duty
    due: datetime
    status: Status
    worker_name: str
    reason: str
    created_at: datetime
    ends_on: date
    ends_at: datetime
    ended_at: datetime | None
    ended_by_name: str | None
    team_id: int | None = None  # the case's team (the digests group by it)

    def is_open(self, now: datetime) -> bool:
        return self.ended_at is None and now < self.ends_at


_ACKNOWLEDGEABLE = (Status.OPEN, Status.BREACHED)


def may_act(session: Session, worker: Worker, deadline: Deadline, *, today: date) -> bool:
    """Whether ``worker`` may acknowledge this deadline: the responsible caseworker, today's
    substitute for them, a leader of the case's team, the head of unit."""
    from watchdog.casestore import Absence

    role = WorkerRole(worker.role)
    if not worker.active:
        return False
    if role == WorkerRole.HEAD or deadline.responsible_worker_id == worker.id:
        return True
    if role == WorkerRole.LEADER:
        team_id = session.execute(select(Case.team_id).where(Case.id == deadline.case_id)).scalar_one()
        return team_id == worker.team_id
    if deadline.responsible_worker_id is None:
        return False
    return session.execute(select(Absence.id).where(
        Absence.worker_id == deadline.responsible_worker_id, Absence.substitute_id == worker.id,
        Absence.starts_on <= today, Absence.ends_on >= today)).first() is not None


def acknowledge(session: Session, *, deadline_id: int, worker_id: int, reason: str | None,
                ends_on: date | None, now: datetime, settings) -> Acknowledgement:
    """Record "jeg er på sagen" by ``worker_id`` about a deadline until the end of ``ends_on``.

    Refused (``AcknowledgementRefused``, by field) when the reason or end date break the rule,
    the deadline is closed, the worker may not act on it, or it is already acknowledged. Appends
    the outcome-log event. Does not commit; flushes, so a concurrent acknowledgement of the same
    deadline is refused here (the unique open column), not at the caller's commit.
    """
    now = ensure_aware(now, what="now")
    today = local_date(now)
    errors = check_acknowledgement(reason, ends_on, today=today, max_days=settings.alerts.ack_max_days)
    deadline = session.get(Deadline, deadline_id)
    worker = session.get(Worker, worker_id)
    if deadline is None or worker is None:
        raise AcknowledgementRefused({"deadline": "Fristen eller medarbejderen findes ikke."})
    if Status(deadline.status) not in _ACKNOWLEDGEABLE:
        errors["deadline"] = "Fristen er ikke længere åben, så der er intet at markere."
    elif not may_act(session, worker, deadline, today=today):
        errors["deadline"] = "Du kan kun markere frister i dine egne sager eller dit teams sager."
    if errors:
        raise AcknowledgementRefused(errors)
    _close_expired(session, deadline_id, now=now)
    current = open_acknowledgement(session, deadline_id, now=now)
    if current is not None:
        raise AcknowledgementRefused({"deadline": _already(session, current)})
    ack = Acknowledgement(deadline_id=deadline_id, worker_id=worker_id, reason=reason.strip(), created_at=now,
                          ends_on=ends_on, ends_at=resume_at(ends_on, start_hour=settings.alerts.working_hours_start),
                          open_deadline_id=deadline_id)
    try:
        with session.begin_nested():
            session.add(ack)
            session.flush()
    except IntegrityError:
        # Someone else acknowledged it between our check and our insert.
        current = open_acknowledgement(session, deadline_id, now=now)
        raise AcknowledgementRefused({"deadline": _already(session, current) if current else
                                      "Fristen er lige blevet markeret af en anden. Opdater siden."}) from None
    _log(session, deadline, AckEvent.ACKNOWLEDGED, at=now,
         detail=f"jeg er på sagen: {worker.name} ({worker.ext_id}) til og med {ends_on:%d-%m-%Y}. "
                f"Begrundelse: {ack.reason}")
    return ack


def end_early(session: Session, *, ack_id: int, worker_id: int, now: datetime) -> Acknowledgement:
    """End an open acknowledgement now (by the person who made it, or anybody who may act on the
    deadline). Reminders resume at once: the deadline is planned again at the next poll and the
    alerts held for the acknowledgement are released. No end message (they ended it themselves)."""
    now = ensure_aware(now, what="now")
    ack = session.get(Acknowledgement, ack_id)
    worker = session.get(Worker, worker_id)
    if ack is None or worker is None:
        raise AcknowledgementRefused({"ack": "Markeringen findes ikke."})
    deadline = session.get(Deadline, ack.deadline_id)
    if ack.worker_id != worker.id and not may_act(session, worker, deadline, today=local_date(now)):
        raise AcknowledgementRefused({"ack": "Du kan kun afslutte markeringer i dine egne eller dit teams sager."})
    done = session.execute(
        update(Acknowledgement)
        .where(Acknowledgement.id == ack.id, Acknowledgement.end_handled_at.is_(None),
               Acknowledgement.ends_at > now)
        .values(ended_at=now, ended_by_id=worker.id, end_handled_at=now, open_deadline_id=None)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(ack)
    if done != 1:
        raise AcknowledgementRefused({"ack": "Markeringen er allerede afsluttet."})
    _log(session, deadline, AckEvent.ENDED, at=now,
         detail=f"jeg er på sagen afsluttet før tid af {worker.name} ({worker.ext_id}); "
                f"den var sat til og med {ack.ends_on:%d-%m-%Y}")
    resume_planning(session, ack, now=now)
    return ack


def resume_planning(session: Session, ack: Acknowledgement, *, now: datetime) -> None:
    """What an acknowledgement held back comes back now: the deadline is planned at the next poll,
    and its alerts held at delivery until the acknowledgement's end are due at once."""
    from watchdog.outbox import Alert, AlertState

    session.execute(update(Deadline).where(Deadline.id == ack.deadline_id, Deadline.next_alert_at.is_not(None))
                    .values(next_alert_at=now).execution_options(synchronize_session=False))
    session.execute(update(Alert).where(
        Alert.deadline_id == ack.deadline_id, Alert.state == AlertState.PENDING,
        Alert.next_attempt_at == ack.ends_at, Alert.next_attempt_at > now,
    ).values(next_attempt_at=now).execution_options(synchronize_session=False))


def _close_expired(session: Session, deadline_id: int, *, now: datetime) -> None:
    """An acknowledgement whose end has passed no longer holds the deadline's open slot (the poll
    sends its end notice; a new acknowledgement may be made before that)."""
    session.execute(update(Acknowledgement).where(
        Acknowledgement.open_deadline_id == deadline_id, Acknowledgement.ends_at <= now,
    ).values(open_deadline_id=None).execution_options(synchronize_session=False))


def _already(session: Session, ack: Acknowledgement) -> str:
    name = session.execute(select(Worker.name).where(Worker.id == ack.worker_id)).scalar_one()
    return (f"{name} er allerede på sagen til og med {ack.ends_on:%d-%m-%Y}. Afslut den markering "
            "først, hvis du vil lave en ny.")


def _log(session: Session, deadline: Deadline, kind: str, *, at: datetime, detail: str) -> None:
    session.execute(OutcomeEvent.__table__.insert(), [{
        "occurred_at": at, "recorded_at": at, "kind": kind, "deadline_id": deadline.id, "deadline_key": deadline.key,
        "case_id": deadline.case_id, "duty": Duty(deadline.duty), "from_status": None, "to_status": None,
        "detail": detail[:2000],
    }])


# --------------------------------------------------------------------------------------------
# Reading

def open_acknowledgement(session: Session, deadline_id: int, *, now: datetime) -> Acknowledgement | None:
    return session.exec(select(Acknowledgement).where(
        Acknowledgement.deadline_id == deadline_id, Acknowledgement.ended_at.is_(None),
        Acknowledgement.ends_at > now)).first()


def active_until(session: Session, deadline_ids, *, now: datetime) -> dict[int, datetime]:
    """deadline id → the end of its open acknowledgement, for the deadlines given (planning's input)."""
    from watchdog.deadlines import chunks

    ids = sorted(set(deadline_ids))
    found: dict[int, datetime] = {}
    for chunk in chunks(ids, 1000):
        for deadline_id, ends_at in session.execute(select(Acknowledgement.deadline_id, Acknowledgement.ends_at).where(
                Acknowledgement.deadline_id.in_(chunk), Acknowledgement.ended_at.is_(None),
                Acknowledgement.ends_at > now)):
            found[deadline_id] = max(ends_at, found.get(deadline_id, ends_at))
    return found


# Made once: an alias built per call cost more than the query itself on the pages that list a
# worker's deadlines (each new alias adapts every column it is used with afresh).
_ACK_BY, _ACK_ENDER = aliased(Worker, name="ack_by"), aliased(Worker, name="ack_ender")


def list_acknowledgements(session: Session, *, now: datetime, team_id: int | None = None,
                          case_id: int | None = None, worker_id: int | None = None,
                          deadline_ids=None, open_only: bool = True, team_ids=None) -> list[AckView]:
    """Acknowledgements as pages show them, soonest end first: a team's (or some teams'), a case's,
    a worker's (made by them) or some deadlines'; only the open ones unless ``open_only`` is False."""
    by, ender = _ACK_BY, _ACK_ENDER
    query = (select(Acknowledgement, Case.ext_id, Deadline.duty, Deadline.due, Deadline.status, by.name, ender.name,
                    Case.team_id)
             .join(Deadline, Deadline.id == Acknowledgement.deadline_id)
             .join(Case, Case.id == Deadline.case_id)
             .join(by, by.id == Acknowledgement.worker_id)
             .outerjoin(ender, ender.id == Acknowledgement.ended_by_id))
    if open_only:
        query = query.where(Acknowledgement.ended_at.is_(None), Acknowledgement.ends_at > now)
    if team_id is not None:
        query = query.where(Case.team_id == team_id)
    if team_ids is not None:
        query = query.where(Case.team_id.in_(sorted(set(team_ids)) or [-1]))
    if case_id is not None:
        query = query.where(Case.id == case_id)
    if worker_id is not None:
        query = query.where(Acknowledgement.worker_id == worker_id)
    if deadline_ids is not None:
        query = query.where(Acknowledgement.deadline_id.in_(sorted(set(deadline_ids)) or [-1]))
    query = query.order_by(Acknowledgement.ends_at, Acknowledgement.id)
    return [AckView(id=a.id, deadline_id=a.deadline_id, case_ref=ref, duty=Duty(duty), due=due, status=Status(status),
                    worker_name=name, reason=a.reason, created_at=a.created_at, ends_on=a.ends_on,
                    ends_at=a.ends_at, ended_at=a.ended_at, ended_by_name=ended_by, team_id=team)
            for a, ref, duty, due, status, name, ended_by, team in session.execute(query).all()]
