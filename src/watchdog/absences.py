"""Absences registered on the web, beside the imported ones. Stage 1 (the case store), for the web.

I/O: the database (table ``absence``). A leader registers a team member's absence (from, to,
substitute) on the team page; alert routing then treats it as it treats an imported absence (the
substitute gets the caseworker's alerts; no substitute: the team's leaders).

Imported rows and web rows never fight:

- An imported row (``source = "import"``) comes from the case system (the import, the API): it is
  read-only on the page, and only the next import changes or removes it.
- A web row (``source = "web"``, ext_id ``web:…``) is the leader's: the page can change or end it;
  an import never touches it (it upserts by the case system's ext_ids, never ``web:…``).
- When both cover the same worker on the same day, **the web row wins** for routing: a leader who
  registers an absence on the page knows something the nightly export does not yet say (or says
  wrongly), and could not otherwise correct it. Ending the web row lets the imported one apply again.

``effective_absences`` applies that rule; alert planning reads absences through it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, select

from watchdog.casestore import Absence, Worker, WorkerRole
from watchdog.clock import ensure_aware, local_date
from watchdog.errors import WatchdogError

WEB = "web"
IMPORT = "import"
MAX_DAYS = 366


class AbsenceRefused(WatchdogError):
    """A web absence was refused; ``errors`` maps a form field to a Danish message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class AbsenceView:
    id: int
    worker_id: int
    worker_name: str
    starts_on: date
    ends_on: date
    substitute_id: int | None
    substitute_name: str | None
    source: str  # "import" or "web"
    registered_by_name: str | None
    overridden: bool  # an imported row that a web row overrides on some of its days

    @property
    def editable(self) -> bool:
        return self.source == WEB


def effective_absences(absences) -> list:
    """One absence per worker per day that routing should use: where a web row and an imported
    row cover the same worker, the web row wins. ``absences`` are rows already limited to one day
    (the planner's today); the result keeps the input's objects."""
    chosen: dict[int, object] = {}
    for absence in sorted(absences, key=lambda a: (getattr(a, "source", IMPORT) == WEB, a.id)):
        chosen[absence.worker_id] = absence  # web rows sort last, so they replace imported ones
    return list(chosen.values())


def absences_on(session: Session, day: date) -> list[Absence]:
    """The absences that apply on ``day`` (after the web-wins rule), for alert routing."""
    return effective_absences(session.exec(
        select(Absence).where(Absence.starts_on <= day, Absence.ends_on >= day)).all())


def _check(session: Session, leader: Worker, worker: Worker | None, starts_on: date | None, ends_on: date | None,
           substitute: Worker | None, substitute_given: bool, today: date) -> dict[str, str]:
    errors: dict[str, str] = {}
    if worker is None:
        errors["worker"] = "Vælg den medarbejder, der er fraværende."
    elif not may_manage(leader, worker):
        errors["worker"] = "Du kan kun registrere fravær for medarbejdere i dit eget team."
    if starts_on is None:
        errors["starts_on"] = "Skriv den første fraværsdag som dd-mm-åååå."
    if ends_on is None:
        errors["ends_on"] = "Skriv den sidste fraværsdag som dd-mm-åååå."
    if starts_on and ends_on:
        if ends_on < starts_on:
            errors["ends_on"] = "Den sidste fraværsdag skal være samme dag som den første eller senere."
        elif ends_on < today:
            errors["ends_on"] = (f"Fraværet er allerede slut ({ends_on:%d-%m-%Y}); det ændrer ingen "
                                 "beskeder. Skriv en sidste dag fra i dag.")
        elif (ends_on - starts_on).days >= MAX_DAYS:
            errors["ends_on"] = f"Et fravær kan højst registreres for {MAX_DAYS} dage ad gangen."
    if substitute_given and substitute is None:
        errors["substitute"] = "Vikaren findes ikke. Vælg en aktiv medarbejder, eller lad feltet stå tomt."
    elif substitute is not None:
        if worker is not None and substitute.id == worker.id:
            errors["substitute"] = "Vikaren kan ikke være den fraværende selv."
        elif not substitute.active:
            errors["substitute"] = "Vikaren er ikke aktiv. Vælg en anden."
    return errors


def may_manage(leader: Worker, worker: Worker) -> bool:
    """A leader manages the absences of their own team; the head of unit and admins everyone's."""
    role = WorkerRole(leader.role)
    if not leader.active:
        return False
    if role in (WorkerRole.HEAD, WorkerRole.ADMIN):
        return True
    return role == WorkerRole.LEADER and leader.team_id is not None and leader.team_id == worker.team_id


def register_absence(session: Session, *, leader_id: int, worker_id: int | None, starts_on: date | None,
                     ends_on: date | None, substitute_id: int | None, now: datetime) -> Absence:
    """Register a web absence. Refused (``AbsenceRefused``, by field) when the leader may not, the
    dates are wrong or the substitute is. Does not commit."""
    now = ensure_aware(now, what="now")
    leader = session.get(Worker, leader_id)
    worker = session.get(Worker, worker_id) if worker_id is not None else None
    substitute = session.get(Worker, substitute_id) if substitute_id is not None else None
    errors = _check(session, leader, worker, starts_on, ends_on, substitute, substitute_id is not None,
                    local_date(now))
    if errors:
        raise AbsenceRefused(errors)
    absence = Absence(ext_id=f"{WEB}:{secrets.token_hex(8)}", worker_id=worker.id, starts_on=starts_on,
                      ends_on=ends_on, substitute_id=substitute.id if substitute else None, source=WEB,
                      registered_by_id=leader.id)
    session.add(absence)
    session.flush()
    return absence


def end_absence(session: Session, *, leader_id: int, absence_id: int, now: datetime) -> Absence | None:
    """End a web absence: one that has not started is removed, one that has ends yesterday.
    An imported absence is refused: it is the case system's, and the next import would bring it
    back. Returns the row (None when removed). Does not commit."""
    today = local_date(ensure_aware(now, what="now"))
    leader = session.get(Worker, leader_id)
    absence = session.get(Absence, absence_id)
    if absence is None:
        raise AbsenceRefused({"absence": "Fraværet findes ikke."})
    if absence.source != WEB:
        raise AbsenceRefused({"absence": "Fraværet kommer fra sagssystemet og kan kun ændres dér."})
    if not may_manage(leader, session.get(Worker, absence.worker_id)):
        raise AbsenceRefused({"absence": "Du kan kun ændre fravær for medarbejdere i dit eget team."})
    if absence.starts_on >= today:
        session.delete(absence)
        session.flush()
        return None
    absence.ends_on = min(absence.ends_on, today - timedelta(days=1))
    session.add(absence)
    session.flush()
    return absence


def list_team_absences(session: Session, team_id: int, *, now: datetime) -> list[AbsenceView]:
    """The team's current and coming absences, imported and web, soonest first."""
    from sqlalchemy.orm import aliased

    today = local_date(ensure_aware(now, what="now"))
    absent, sub, by = aliased(Worker), aliased(Worker), aliased(Worker)
    rows = session.execute(
        select(Absence, absent.name, sub.name, by.name)
        .join(absent, absent.id == Absence.worker_id)
        .outerjoin(sub, sub.id == Absence.substitute_id)
        .outerjoin(by, by.id == Absence.registered_by_id)
        .where(absent.team_id == team_id, Absence.ends_on >= today)
        .order_by(Absence.starts_on, absent.name, Absence.id)).all()
    web = [(a.worker_id, a.starts_on, a.ends_on) for a, *_ in rows if a.source == WEB]

    def overridden(a: Absence) -> bool:
        return a.source != WEB and any(w == a.worker_id and s <= a.ends_on and e >= a.starts_on for w, s, e in web)

    return [AbsenceView(id=a.id, worker_id=a.worker_id, worker_name=name, starts_on=a.starts_on, ends_on=a.ends_on,
                        substitute_id=a.substitute_id, substitute_name=sub_name, source=a.source or IMPORT,
                        registered_by_name=by_name, overridden=overridden(a))
            for a, name, sub_name, by_name in rows]


def substitute_choices(session: Session, *, exclude: int | None = None) -> list[Worker]:
    """Active workers who can stand in, by name (caseworkers and leaders)."""
    query = (select(Worker).where(Worker.active == True,
                                  or_(Worker.role == WorkerRole.CASEWORKER, Worker.role == WorkerRole.LEADER))
             .order_by(Worker.name, Worker.id))
    return [w for w in session.exec(query).all() if w.id != exclude]
