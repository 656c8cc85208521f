"""The barometer counted in the database, for the deadlines whose status was final by the as-of instant.

Replaying the outcome log of every deadline of a period (``outcome_log.load_timelines``) is what
the barometer's rules say, but at national scale it is a read of millions of events and a replay
per deadline in Python. Most of them need no replay: when every status event of a deadline
occurred by the as-of instant (and, for ``known_at``, was recorded by then), the replay ends in
the status the log recorded last, which is the ``deadline`` row's own status (``refresh_deadlines``
changes a row's status and appends its events in one transaction; the log is append-only and
deadline rows are never deleted). So:

- ``replayed_cases``: the cases with a deadline of the period that has an event occurred after
  the as-of instant (or recorded after ``known_at``), found through the log's time indexes. Those
  few cases go the replaying way (``reports.barometer.load_barometer_rows``), every deadline of
  them. (This relies on every deadline row having its creation event, which ``refresh_deadlines``
  writes with the row: a row without any event would count here by its status, where the replay
  finds no status.)
- ``count_in_sql``: every other case of the period counted by one GROUP BY over the period's
  deadline rows (answer, first deadline per case and question, month), in the database.

Both give a ``Tally`` of disjoint sets of cases; ``compute_barometer`` adds them. The counting
rules are ``barometer_tables.answer_for`` and ``applies``, written here once more as SQL
expressions; a test compares the two ways on generated stores.

I/O: reads ``deadline``, ``case_file``, ``investigation``, ``notification`` and ``outcome_event``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import and_, bindparam, case, false, func, literal, null, or_, select
from sqlmodel import Session

from watchdog.casestore import Case, Investigation, InvestigationKind, Notification
from watchdog.deadlines import Deadline
from watchdog.outcome_log import OutcomeEvent
from watchdog.reports.barometer_tables import Period, Tally, month_end
from watchdog.reports.questions import JA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING, QUESTIONS, QuestionSpec
from watchdog.rules.types import Duty, Status, SubjectKind

# A period of every case longer than this reads the whole deadline table on SQLite (see ``period_rows``).
LONG_PERIOD_DAYS = 92
ANSWERS = (JA, NEJ_LOVLIG, NEJ, NEJ_VURDERING, NEJ_GENVURDERING)  # stored as their index


def in_period(period: Period, due=Deadline.due):
    """A deadline belongs to the period when its due time falls in (start, end]."""
    return and_(due > period.start_instant, due <= period.end_instant)


def _instant(name: str):
    """A bound instant of the statements below (the type of ``deadline.due``: aware UTC)."""
    return bindparam(name, type_=Deadline.__table__.c.due.type)


def _reads_in_order(period: Period, team_id: int | None, dialect: str) -> bool:
    # SQLite keeps no statistics of how due times spread (no STAT4): it always reads a period
    # through ix_deadline_due, which for a year of the whole store is a random read of a good part
    # of the table, 3-4 times slower than reading the table in order. The due time wrapped in an
    # expression reads the table in order.
    return dialect == "sqlite" and team_id is None and period.end - period.start > timedelta(days=LONG_PERIOD_DAYS)


def _bound(period: Period, team_id: int | None, **instants) -> dict:
    values = {"period_start": period.start_instant, "period_end": period.end_instant, **instants}
    if team_id is not None:
        values["team_id"] = team_id
    return values


@lru_cache(maxsize=16)
def _period_select(*, team: bool, in_order: bool):
    """``period_rows`` with bound values (``period_start``, ``period_end``, ``team_id``)."""
    due = func.coalesce(Deadline.due, Deadline.due) if in_order else Deadline.due
    stmt = (
        select(Deadline.id, Deadline.case_id, Deadline.duty, Deadline.seq, Deadline.due, Deadline.status,
               Deadline.citation, Investigation.kind.label("investigation_kind"),
               Notification.reassessment_reasoning_recorded.label("reasoning_recorded"))
        .select_from(Deadline)
        .outerjoin(Investigation, and_(Deadline.subject_kind == SubjectKind.INVESTIGATION,
                                       Investigation.id == Deadline.subject_id))
        .outerjoin(Notification, and_(Deadline.subject_kind == SubjectKind.NOTIFICATION,
                                      Notification.id == Deadline.subject_id))
        .where(due > _instant("period_start"), due <= _instant("period_end"))
    )
    if team:
        stmt = stmt.join(Case, Case.id == Deadline.case_id).where(Case.team_id == bindparam("team_id"))
    return stmt


def period_rows(period: Period, *, team_id: int | None = None, dialect: str = ""):
    """The columns of the period's deadlines that the barometer's questions read (a select):
    the rows ``count_in_sql`` counts, and the benchmark's floor for the barometer page.
    ``dialect``: the database's (``session.get_bind().dialect.name``), for the plan it reads by."""
    return (_period_select(team=team_id is not None, in_order=_reads_in_order(period, team_id, dialect))
            .params(_bound(period, team_id)))


@lru_cache(maxsize=16)
def _replayed(*, team: bool, known: bool):
    """``replayed_cases`` with bound values (``as_of``, ``known_at``, ``period_*``, ``team_id``)."""
    # Any event, not only status events: an alert sent after ``as_of`` sends its deadline the
    # replaying way too, which is never wrong, and the time indexes alone answer (ix_outcome_event_
    # occurred_at, ix_outcome_event_recorded_at; with the kind too, SQLite reads every status event).
    late = OutcomeEvent.occurred_at > _instant("as_of")
    if known:
        late = or_(late, OutcomeEvent.recorded_at > _instant("known_at"))
    in_range = and_(Deadline.due > _instant("period_start"), Deadline.due <= _instant("period_end"))
    if not team:  # the late events first (few), through the time index
        return select(Deadline.case_id).where(in_range, Deadline.id.in_(select(OutcomeEvent.deadline_id).where(late)))
    # One team: its cases' deadlines first, each looked up in the log (as "id IN (late events)"
    # SQLite probed every case of the team against every late event of the country).
    return (select(Deadline.case_id).select_from(OutcomeEvent)
            .join(Deadline, Deadline.id == OutcomeEvent.deadline_id)
            .join(Case, Case.id == Deadline.case_id)
            .where(late, in_range, Case.team_id == bindparam("team_id")))


def _replayed_values(period: Period, as_of: datetime, known_at: datetime | None, team_id: int | None) -> dict:
    return _bound(period, team_id, as_of=as_of, **({"known_at": known_at} if known_at is not None else {}))


def replayed_cases(period: Period, *, as_of: datetime, known_at: datetime | None = None,
                   team_id: int | None = None):
    """The ids of the cases (a select) with a deadline of the period whose events do not all lie
    by ``as_of`` (occurred) and ``known_at`` (recorded): their rows need the log replayed. For a
    period long past, that is most cases with later history: correct, only as slow as before."""
    return (_replayed(team=team_id is not None, known=known_at is not None)
            .params(_replayed_values(period, as_of, known_at, team_id)))


def _check_disjoint(specs) -> None:
    """Each deadline answers at most one question (the SQL gives each row one question)."""
    by_duty: dict[Duty, list[tuple[bool, bool]]] = {}
    for spec in specs:
        by_duty.setdefault(spec.duty, []).append((spec.first_follow_up_only, spec.later_follow_ups_only))
    for duty, flags in by_duty.items():
        if len(flags) > 1 and sorted(flags) != [(False, True), (True, False)]:
            raise ValueError(f"the questions of {duty} overlap: each deadline must answer at most one")


def _question(rows, specs):
    """Which question (its index in ``specs``) a row answers, or NULL (``barometer_tables.applies``)."""
    whens = []
    for index, spec in enumerate(specs):
        conditions = [rows.c.duty == spec.duty]
        if spec.duty == Duty.INVESTIGATION_4M:
            conditions.append(or_(rows.c.investigation_kind.is_(None),
                                  rows.c.investigation_kind != InvestigationKind.UPDATE))
        if spec.first_follow_up_only:
            conditions.append(rows.c.seq == 0)
        if spec.later_follow_ups_only:
            conditions.append(rows.c.seq != 0)
        whens.append((and_(*conditions), index))
    return case(*whens, else_=null())


def _answer(rows, as_of):
    """The answer (its index in ``ANSWERS``) or NULL: not counted (``barometer_tables.answer_for``)."""
    status = rows.c.status
    code = ANSWERS.index
    reassessment = case(
        (status.in_([Status.MET, Status.MET_LATE]),
         case((rows.c.reasoning_recorded == false(), code(NEJ_VURDERING)), else_=code(JA))),
        (status == Status.EXCEPTED, code(NEJ_LOVLIG)),
        else_=code(NEJ_GENVURDERING))
    return case(
        (status == Status.NOT_APPLICABLE, null()),
        (and_(status == Status.OPEN, rows.c.due > as_of), null()),  # not yet due: no answer yet
        (rows.c.duty == Duty.REASSESSMENT, reassessment),
        (status == Status.MET, code(JA)),
        (status == Status.EXCEPTED, code(NEJ_LOVLIG)),
        else_=code(NEJ))  # met late, breached, or overdue and not yet marked


def _month(rows, months: int):
    """The index of the month of a row's due day among the period's ``months`` (due at midnight: the
    day before), from the bound ends of the months ``month_end_0``, ``month_end_1``, …"""
    if months == 1:
        return literal(0)
    return case(*((rows.c.due <= _instant(f"month_end_{index}"), index) for index in range(months - 1)),
                else_=months - 1)


@lru_cache(maxsize=128)
def _count_query(specs: tuple[QuestionSpec, ...], months: int, *, team: bool, late: str | None, in_order: bool):
    """The counting statement of one shape, built once: its values (the period, the as-of instant,
    the team, the months' ends) are bound at execution. Building and compiling a statement of this
    size took longer than running it for one team (2.7 ms against 4 ms; ``benchmarks/pages.py``).
    ``late``: which cases to leave to the replay (None: none; "listed": ``replayed_ids``; or those
    of ``replayed_cases`` as "occurred", "occurred_or_recorded")."""
    _check_disjoint(specs)
    base = _period_select(team=team, in_order=in_order)
    if late == "listed":
        base = base.where(Deadline.case_id.not_in(bindparam("replayed_ids", expanding=True)))
    elif late is not None:
        base = base.where(Deadline.case_id.not_in(_replayed(team=team, known=late == "occurred_or_recorded")))
    rows = base.subquery("period_rows")
    answered = select(_question(rows, specs).label("q"), _answer(rows, _instant("as_of")).label("a"),
                      _month(rows, months).label("m"), rows.c.citation, rows.c.case_id, rows.c.due,
                      rows.c.id).subquery("answered")
    # A case's answer to a question is its first counted deadline (earliest due, then id); the
    # uncounted rows rank apart, so that they only name their paragraph.
    first = (func.row_number().over(partition_by=(answered.c.q, answered.c.case_id, answered.c.a.is_(None)),
                                    order_by=(answered.c.due, answered.c.id)) == 1)
    ranked = select(answered.c.q, answered.c.a, answered.c.m, answered.c.citation,
                    case((first, 1), else_=0).label("first")).where(answered.c.q.is_not(None)).subquery("ranked")
    return (select(ranked.c.q, ranked.c.a, ranked.c.m, ranked.c.citation, func.sum(ranked.c.first))
            .group_by(ranked.c.q, ranked.c.a, ranked.c.m, ranked.c.citation))


def count_in_sql(session: Session, period: Period, *, as_of: datetime, team_id: int | None = None,
                 leave_replayed: bool = True, known_at: datetime | None = None,
                 replayed_ids: Sequence[int] | None = None, specs: tuple[QuestionSpec, ...] = QUESTIONS) -> Tally:
    """The period's cases counted in one query, each deadline by its ``deadline`` row's status:
    right only for deadlines whose status events all lie by ``as_of`` (see the module's docstring).
    ``leave_replayed``: leave out the cases the caller replays, ``replayed_ids`` when given (as read
    from ``replayed_cases(period, as_of, known_at, team_id)``), else that select itself; False
    counts every case (only right when none has a later event)."""
    months = period.months()
    if not leave_replayed or (replayed_ids is not None and not replayed_ids):
        late = None
    elif replayed_ids is not None:
        late = "listed"
    else:
        late = "occurred_or_recorded" if known_at is not None else "occurred"
    query = _count_query(tuple(specs), len(months), team=team_id is not None, late=late,
                         in_order=_reads_in_order(period, team_id, session.get_bind().dialect.name))
    values = _replayed_values(period, as_of, known_at if late != "listed" else None, team_id)
    values.update({f"month_end_{i}": month_end(y, m) for i, (y, m) in enumerate(months[:-1])})
    if late == "listed":
        values["replayed_ids"] = sorted(replayed_ids)
    tally = Tally()
    for q, a, m, citation, cases in session.execute(query, values):
        key = specs[q].key
        tally.cited[key].add(citation)
        if a is not None and cases:
            tally.counted[key][(ANSWERS[a], months[m], citation)] += int(cases)
    return tally
