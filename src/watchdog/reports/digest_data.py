"""The data of the leaders' weekly digests (I/O: the database), for every team at once.

``load_digests_data`` reads what the digests of the given teams (default: all) need with a fixed
number of queries, whatever the number of teams: their deadlines of interest (every open breach,
the open deadlines due within ``AT_RISK_DAYS``, last week's late ones), the deadlines due this
year with their status from the outcome log (for the year-to-date barometer) and the open
"jeg er på sagen" acknowledgements; then groups them per team in Python. At go-live the first
poll builds the digest of every leader: two queries per team made it quadratic in the store
(each scanned the deadlines of every team). ``load_digest_data`` is one team's slice of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import quote

from sqlalchemy import or_
from sqlmodel import Session, select

from watchdog.casestore import Case, Worker
from watchdog.clock import ensure_aware, local_date, local_midnight
from watchdog.deadlines import Deadline
from watchdog.reports.barometer import BarometerReport, Period, compute_barometer, load_barometer_rows
from watchdog.reports.weeks import week_monday
from watchdog.rules.types import Duty, Status

AT_RISK_DAYS = 14


@dataclass(frozen=True)
class DigestDeadline:
    deadline_id: int
    case_ref: str
    case_link: str
    duty: Duty
    citation: str
    due: datetime
    status: Status
    worker_name: str | None
    municipal_policy: bool = False


@dataclass(frozen=True)
class DigestData:
    deadlines: tuple[DigestDeadline, ...]
    year_to_date: BarometerReport
    acknowledged: tuple = ()  # the team's open acknowledgements (acknowledgements.AckView)


def case_link_for(case_ref: str, link: str | None, settings) -> str:
    """The case's own link, else the configured template (as ``delivery_round.case_link`` does)."""
    if link:
        return link
    return settings.alerts.case_link_template.format(case_ref=quote(case_ref, safe=""))


def past_week_window(week: str) -> tuple[datetime, datetime]:
    monday = week_monday(week)
    return local_midnight(monday - timedelta(days=7)), local_midnight(monday)


def year_to_date(now: datetime) -> Period:
    year_start = date(local_date(now).year, 1, 1)
    return Period(year_start, max(year_start, local_date(now)))


def load_digests_data(session: Session, *, week: str, now: datetime, settings,
                      team_ids: Iterable[int] | None = None) -> dict[int, DigestData]:
    """Each team's digest data for ``week`` as of ``now``: of ``team_ids``, or of every team.
    A team with nothing in it gets empty lists and an empty barometer (it is in the result)."""
    from watchdog.acknowledgements import list_acknowledgements

    now = ensure_aware(now, what="now")
    wanted = None if team_ids is None else sorted(set(team_ids))
    past_start, _ = past_week_window(week)
    horizon = now + timedelta(days=AT_RISK_DAYS)
    # Plain rows, not ORM objects: at go-live this is every open deadline of the municipality.
    stmt = (
        select(Case.team_id, Deadline.id, Case.ext_id, Case.link, Deadline.duty, Deadline.citation, Deadline.due,
               Deadline.status, Worker.name, Deadline.municipal_policy)
        .join(Case, Case.id == Deadline.case_id)
        .outerjoin(Worker, Worker.id == Deadline.responsible_worker_id)
        .where(or_(
            Deadline.status == Status.BREACHED,
            (Deadline.status == Status.OPEN) & (Deadline.due <= horizon),
            (Deadline.status == Status.MET_LATE) & (Deadline.due > past_start),
        ))
        .order_by(Deadline.due, Deadline.id)
    )
    if wanted is not None:
        stmt = stmt.where(Case.team_id.in_(wanted or [-1]))
    items: dict[int, list[DigestDeadline]] = defaultdict(list)
    for team_id, deadline_id, ref, link, duty, citation, due, status, worker, policy in session.execute(stmt):
        items[team_id].append(DigestDeadline(
            deadline_id=deadline_id, case_ref=ref, case_link=case_link_for(ref, link, settings), duty=Duty(duty),
            citation=citation, due=due, status=Status(status), worker_name=worker, municipal_policy=policy))

    period = year_to_date(now)
    rows: dict[int, list] = defaultdict(list)
    for row in load_barometer_rows(session, period, as_of=now, team_ids=wanted):
        rows[row.team_id].append(row)
    acks: dict[int, list] = defaultdict(list)
    for ack in list_acknowledgements(session, now=now, team_ids=wanted):
        acks[ack.team_id].append(ack)
    teams = wanted if wanted is not None else sorted({*items, *rows, *acks} - {None})
    return {team_id: DigestData(deadlines=tuple(items.get(team_id, ())),
                                year_to_date=compute_barometer(rows.get(team_id, ()), period, as_of=now),
                                acknowledged=tuple(acks.get(team_id, ())))
            for team_id in teams}


def load_digest_data(session: Session, team_id: int, *, week: str, now: datetime, settings) -> DigestData:
    """One team's digest data (``load_digests_data`` for that team)."""
    return load_digests_data(session, week=week, now=now, settings=settings, team_ids=[team_id])[team_id]
