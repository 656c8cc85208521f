"""What the pages show: plain query functions over a session. I/O: the database (reads only).

Each page's route calls one function here (the benchmark in ``benchmarks/pages.py`` times the
same functions as each page's floor). They build on the shared readers — ``deadlines.list_deadlines``
(the CLI's ``watchdog deadlines`` and the API's ``GET /v1/deadlines``), the outbox's counters,
the heartbeat table — and add only what a page needs beside them: the alerts sent about a
deadline, a case's link into the case system, counts per caseworker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, select

from watchdog.absences import effective_absences, list_team_absences
from watchdog.acknowledgements import AckView, list_acknowledgements
from watchdog.casestore import Absence, Case, Team, Worker, WorkerRole
from watchdog.clock import ensure_aware, local_date
from watchdog.deadlines import Deadline, DeadlineView, chunks, list_deadlines
from watchdog.outbox import Alert, AlertKind, AlertState
from watchdog.reports.digest import case_link_for
from watchdog.rules.types import Duty, Status

DEADLINE_ALERT_KINDS = (AlertKind.WARNING, AlertKind.ESCALATION, AlertKind.REMINDER)
DELIVERED = (AlertState.SENT, AlertState.ACCEPTED)


@dataclass(frozen=True)
class SentAlert:
    deadline_id: int
    alert_id: int
    kind: AlertKind
    stage: str
    channel: str
    state: AlertState
    at: datetime  # when it was sent (or planned, while not sent)
    recipient: str | None  # the worker's name
    last_error: str | None = None


@dataclass(frozen=True)
class DeadlineLine:
    """One row of a deadline list: the deadline, its case link and the alerts sent about it."""

    deadline: DeadlineView
    link: str
    overdue: bool  # breached, or still open past its due time
    alerts: tuple[SentAlert, ...]


@dataclass(frozen=True)
class WorkerDeadlines:
    worker: Worker
    upcoming: tuple[DeadlineLine, ...]  # can still be met, soonest first
    breached: tuple[DeadlineLine, ...]
    acks: dict[int, AckView]  # the open "jeg er på sagen" acknowledgement of a listed deadline

    @property
    def case_refs(self) -> list[str]:
        return [line.deadline.case_ref for line in (*self.upcoming, *self.breached)]


def find_worker(session: Session, ext_id: str) -> Worker | None:
    return session.exec(select(Worker).where(Worker.ext_id == ext_id)).first()


def case_links(session: Session, case_refs: Sequence[str], settings) -> dict[str, str]:
    """The link into the case system for each reference (the case's own, else the template)."""
    links: dict[str, str] = {}
    unique = list(dict.fromkeys(case_refs))
    for part in chunks(unique, 500):
        for ref, link in session.execute(select(Case.ext_id, Case.link).where(Case.ext_id.in_(list(part)))):
            links[ref] = case_link_for(ref, link, settings)
    return links


def alerts_about(session: Session, deadline_ids: Sequence[int], *, delivered_only: bool) -> dict[int, list[SentAlert]]:
    """The alerts about each deadline, oldest first (only the delivered ones, or all with their state)."""
    found: dict[int, list[SentAlert]] = defaultdict(list)
    for part in chunks(list(deadline_ids), 500):
        # Only the deadline_id condition in SQL: with kind or state in the WHERE clause SQLite may
        # pick those (much less selective) indexes and scan a national outbox (benchmarks/pages.py).
        query = (select(Alert, Worker.name).outerjoin(Worker, Worker.id == Alert.recipient_worker_id)
                 .where(Alert.deadline_id.in_(list(part))))
        for alert, name in session.execute(query.order_by(Alert.send_after, Alert.id)):
            if alert.kind not in DEADLINE_ALERT_KINDS or (delivered_only and alert.state not in DELIVERED):
                continue
            found[alert.deadline_id].append(SentAlert(
                deadline_id=alert.deadline_id, alert_id=alert.id, kind=AlertKind(alert.kind), stage=alert.stage,
                channel=str(alert.channel), state=AlertState(alert.state), at=alert.sent_at or alert.send_after,
                recipient=name, last_error=alert.last_error))
    return found


def worker_deadlines(session: Session, worker: Worker, *, now: datetime, settings, duties: Sequence[Duty] = (),
                     due_from: datetime | None = None, due_to: datetime | None = None) -> WorkerDeadlines:
    """*Mine frister*: a worker's open deadlines (can still be met, soonest first), then the breached,
    with the alerts delivered about each and their open acknowledgements."""
    now = ensure_aware(now, what="now")
    views = list_deadlines(session, statuses=(Status.OPEN, Status.BREACHED), duties=duties,
                           worker_ext_id=worker.ext_id, due_from=due_from, due_to=due_to)
    links = case_links(session, [v.case_ref for v in views], settings)
    alerts = alerts_about(session, [v.id for v in views], delivered_only=True)
    upcoming, breached = [], []
    for v in views:
        overdue = v.status == Status.BREACHED or v.due <= now
        line = DeadlineLine(v, links.get(v.case_ref, ""), overdue, tuple(alerts.get(v.id, ())))
        (breached if overdue else upcoming).append(line)
    acks = {a.deadline_id: a for a in list_acknowledgements(session, now=now, deadline_ids=[v.id for v in views])}
    return WorkerDeadlines(worker, tuple(upcoming), tuple(breached), acks)


# --------------------------------------------------------------------------------------------
# Team


@dataclass(frozen=True)
class MemberLine:
    ext_id: str
    name: str
    role: WorkerRole
    fte: float
    breached: int
    due_7: int
    due_14: int
    open: int
    cases: int
    away_until: date | None = None
    substitute: str | None = None

    @property
    def cases_per_fte(self) -> float | None:
        return round(self.cases / self.fte, 1) if self.fte > 0 else None


@dataclass(frozen=True)
class TeamOverview:
    team: Team
    leader: str | None
    members: tuple[MemberLine, ...]

    def total(self, name: str) -> int:
        return sum(getattr(m, name) for m in self.members)


@dataclass(frozen=True)
class TeamActions:
    """What a team's page shows beside the counts: the team's open acknowledgements, its absences,
    and the members an absence can be registered for (the absence form shows them too)."""

    team_id: int
    open_acks: tuple[AckView, ...]
    absence_rows: tuple
    absence_members: tuple[Worker, ...]

    def context(self) -> dict:
        """The template variables of the acknowledgement and absence parts."""
        return {"open_acks": list(self.open_acks), "absence_rows": list(self.absence_rows),
                "absence_members": list(self.absence_members), "team_id": self.team_id}


def team_actions(session: Session, team_id: int, *, now: datetime) -> TeamActions:
    """The team's open acknowledgements, absences and active members. (The substitutes an absence
    may name, every active worker of the store, only the absence form reads.)"""
    members = session.exec(select(Worker).where(Worker.team_id == team_id, Worker.active == True)
                           .order_by(Worker.name)).all()
    return TeamActions(team_id, tuple(list_acknowledgements(session, now=now, team_id=team_id)),
                       tuple(list_team_absences(session, team_id, now=now)), tuple(members))


@dataclass(frozen=True)
class TeamPage:
    """Everything one team's page shows."""

    overview: TeamOverview
    actions: TeamActions

    @property
    def case_refs(self) -> list[str]:
        """The case references the page shows (in its open acknowledgements), for the access log."""
        return [a.case_ref for a in self.actions.open_acks]


def team_page(session: Session, team: Team, *, now: datetime) -> TeamPage:
    """*Team* for one team: ``team_overview`` and ``team_actions``."""
    return TeamPage(team_overview(session, team, now=now), team_actions(session, team.id, now=now))


def team_choices(session: Session) -> list:
    """Every team's ``ext_id`` and ``name``, by name: the team picker of the report pages (rows, not
    ORM objects: a national store has hundreds of teams)."""
    return list(session.execute(select(Team.ext_id, Team.name).order_by(Team.name)).all())


def teams_of(session: Session, *, team_ids: Sequence[int] | None) -> list[Team]:
    """The teams (all when ``team_ids`` is None), by name."""
    query = select(Team).order_by(Team.name)
    if team_ids is not None:
        query = query.where(Team.id.in_(list(team_ids)))
    return list(session.exec(query).all())


def team_overview(session: Session, team: Team, *, now: datetime) -> TeamOverview:
    """*Team*: per caseworker the breached, due within 7 and 14 days, open, active cases; absences now."""
    now = ensure_aware(now, what="now")
    workers = list(session.exec(select(Worker).where(Worker.team_id == team.id, Worker.active == True)
                                .order_by(Worker.name)).all())
    ids = [w.id for w in workers]
    is_open = Deadline.status == Status.OPEN
    overdue = or_(Deadline.status == Status.BREACHED, and_(is_open, Deadline.due <= now))
    counts: dict[int, tuple[int, int, int, int]] = {}
    cases: dict[int, int] = {}
    for part in chunks(ids, 500):
        for wid, b, d7, d14, o in session.execute(
            select(Deadline.responsible_worker_id,
                   func.sum(case((overdue, 1), else_=0)),
                   func.sum(case((and_(is_open, Deadline.due > now, Deadline.due <= now + timedelta(days=7)), 1), else_=0)),
                   func.sum(case((and_(is_open, Deadline.due > now, Deadline.due <= now + timedelta(days=14)), 1), else_=0)),
                   func.sum(case((and_(is_open, Deadline.due > now), 1), else_=0)))
            # No status condition in SQL: SQLite would scan the status index (every open deadline
            # of the country) instead of the few thousand rows of the team's workers.
            .where(Deadline.responsible_worker_id.in_(list(part)))
            .group_by(Deadline.responsible_worker_id)
        ):
            counts[wid] = (int(b or 0), int(d7 or 0), int(d14 or 0), int(o or 0))
        active = (Case.opened_at <= now) & or_(Case.closed_at.is_(None), Case.closed_at > now)
        for wid, n in session.execute(select(Case.worker_id, func.count(Case.id))
                                      .where(Case.worker_id.in_(list(part)), active).group_by(Case.worker_id)):
            cases[wid] = int(n)
    today = local_date(now)
    away: dict[int, tuple[date, int | None]] = {}
    # As alert routing sees them: a web-registered absence wins over an imported one (watchdog.absences).
    for a in effective_absences(session.exec(select(Absence).where(
            Absence.worker_id.in_(ids), Absence.starts_on <= today, Absence.ends_on >= today)).all()):
        away[a.worker_id] = (a.ends_on, a.substitute_id)
    names = {w.id: w.name for w in workers}
    missing = {s for _, s in away.values() if s is not None and s not in names}
    if missing:
        names.update(dict(session.execute(select(Worker.id, Worker.name).where(Worker.id.in_(list(missing)))).all()))
    members, leader = [], None
    for w in workers:
        if w.role == WorkerRole.LEADER and leader is None:
            leader = w.name
        if w.role not in (WorkerRole.CASEWORKER, WorkerRole.REVIEWER) and w.id not in counts:
            continue
        b, d7, d14, o = counts.get(w.id, (0, 0, 0, 0))
        until, sub = away.get(w.id, (None, None))
        members.append(MemberLine(w.ext_id, w.name, WorkerRole(w.role), w.fte, b, d7, d14, o, cases.get(w.id, 0),
                                  until, names.get(sub) if sub else None))
    return TeamOverview(team, leader, tuple(members))


# --------------------------------------------------------------------------------------------
# Drift (IT operations)


@dataclass(frozen=True)
class DeadLetter:
    alert_id: int
    kind: AlertKind
    stage: str
    channel: str
    attempts: int
    created_at: datetime
    last_error: str | None
    case_ref: str | None


@dataclass(frozen=True)
class OpsOverview:
    counts: dict[str, int]
    dead: tuple[DeadLetter, ...]
    replicas: tuple  # ServiceHeartbeat rows

    @property
    def case_refs(self) -> list[str]:
        return [d.case_ref for d in self.dead if d.case_ref]


def ops_overview(session: Session, *, limit: int = 200) -> OpsOverview:
    """The outbox's counts per state, the newest dead letters with their last error, the replicas' polls."""
    from watchdog.ops.heartbeat import replicas
    from watchdog.outbox import count_by_state

    dead = [DeadLetter(a.id, AlertKind(a.kind), a.stage, str(a.channel), a.attempts, a.created_at,
                       a.last_error, ref)
            for a, ref in session.execute(
                select(Alert, Case.ext_id).outerjoin(Deadline, Deadline.id == Alert.deadline_id)
                .outerjoin(Case, Case.id == Deadline.case_id)
                .where(Alert.state == AlertState.DEAD).order_by(Alert.id.desc()).limit(limit))]
    counts = {s.value: 0 for s in AlertState} | count_by_state(session)
    return OpsOverview(counts, tuple(dead), tuple(replicas(session)))
