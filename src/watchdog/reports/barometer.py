"""The barometer report: one table per duty in the form of Ankestyrelsen's Børnesagsbarometer.

``load_barometer_rows`` reads the deadlines of a period with their status as of an instant,
taken from the append-only outcome log (I/O: the database). ``compute_barometer``
(``watchdog.reports.barometer_tables``) is pure: rows in, a ``BarometerReport`` of plain
dataclasses out, which the renderers in ``watchdog.reports.output`` write in every format with
the same numbers. ``barometer_report`` replays the log only for the cases that need it and counts
the rest in the database (``watchdog.reports.barometer_sql``): the same numbers either way.

The counting rules (also in the README and in every report's footer):

- **Period.** A deadline belongs to the period when its due time falls in it. A duty due on a
  date is due at the end of that date (the next local midnight), so it belongs to that date:
  the period is the half-open interval (local midnight of ``from``, end of ``to``].
- **As of.** Each deadline's status is the one it had in the case at the report's as-of instant
  (default: the end of the period, or now if that is earlier), by the occurred times of the
  outcome log (``watchdog.outcome_log``): history imported today reports at once, as a report
  printed back then would have. ``known_at`` uses only what the log had recorded by that
  instant, so it reproduces a report printed then. A deadline whose log still says "open"
  although its due time had passed (the poll had not yet marked it) counts as "Nej": it was not
  recorded as met by its due time. A deadline due by the as-of instant with no status then is
  not counted, and the report says why in Danish (``unsettled_notes``).
- **Answers.** met → "Ja"; excepted → "Nej, men lovlig grund"; met late or breached → "Nej";
  open and not yet due, and not applicable, are not counted.
  The reassessment (genvurdering) follows Ankestyrelsen's question, which has no time limit
  (the statute sets none; watchdog's due time there is municipal policy): a reassessment made by
  another worker counts "Ja" even after the policy deadline, or "Nej, kommunens vurdering
  fremgår ikke af genvurderingen" when the case system says the concrete assessment is not in
  it; none made counts "Nej, der ses ikke foretaget en genvurdering".
- **Applies to.** Only where Ankestyrelsen's question applies: the four-month question only to
  new investigations (not updates); the three-month follow-up question only to the first
  follow-up of a measure (later follow-ups have a table of their own).
- **Cases, not deadlines.** Ankestyrelsen counts cases: when a case has several counted
  deadlines of one question in the period, the first (earliest due) is the case's answer.
- **Percent** of the cases the question applies to, whole numbers rounded half up, as
  Ankestyrelsen does (1 of 6 → 17 %, 5 of 6 → 83 %); "I alt" is 100 % when there is any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import and_
from sqlmodel import Session, select

from watchdog.casestore import Case, Investigation, InvestigationKind, Notification, Team
from watchdog.clock import ensure_aware, format_local
from watchdog.deadlines import Deadline
from watchdog.outcome_log import first_recorded, load_timelines, status_at
from watchdog.reports import ReportInputError
from watchdog.reports.barometer_sql import count_in_sql, in_period, replayed_cases
from watchdog.rules.types import Duty, Regime, SubjectKind

# The pure part (the tables and how they are counted) is part of this module's API.
from watchdog.reports.barometer_tables import (  # noqa: F401
    FOOTER_DA, AnswerRow, BarometerReport, BarometerTable, DeadlineRow, Period, Tally, TrendPoint, answer_for,
    applies, compute_barometer, percent_of, tally_rows,
)
from watchdog.reports.questions import (  # noqa: F401  (the answers are part of this module's API)
    MONTHS_DA, I_ALT, JA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING, QUESTIONS, QuestionSpec,
)


# Up to this many cases to replay are read into a list (bound to both queries); more stay a subquery.
REPLAYED_AS_LIST = 2000

# --------------------------------------------------------------------------------------------
# Loading (I/O)
# --------------------------------------------------------------------------------------------


def find_team(session: Session, team: str | None) -> Team | None:
    """The team named by ``team`` (its ext_id, or its name); None for all teams."""
    if team is None:
        return None
    found = session.exec(select(Team).where(Team.ext_id == team)).first()
    if found is None:
        found = session.exec(select(Team).where(Team.name == team)).first()
    if found is None:
        known = ", ".join(t.ext_id for t in session.exec(select(Team).order_by(Team.ext_id)).all()) or "none"
        raise ReportInputError(f"unknown team {team!r} (known teams: {known})")
    return found


def default_as_of(period: Period, now: datetime) -> datetime:
    """The end of the period, or ``now`` while the period is still running."""
    return min(period.end_instant, ensure_aware(now, what="now"))


def load_barometer_rows(
    session: Session, period: Period, *, as_of: datetime, team_id: int | None = None,
    known_at: datetime | None = None, case_ids=None, team_ids: Sequence[int] | None = None,
) -> list[DeadlineRow]:
    """The deadlines due in ``period`` (of one team's cases, of ``team_ids``', or all; of
    ``case_ids``, a select or a list of ids, if given), with their status at the occurred instant ``as_of``,
    as the outcome log knew it at ``known_at`` (None: as known now), replayed from the log. Two
    queries, however many teams: the rows carry their team (the digests group them)."""
    as_of = ensure_aware(as_of, what="as_of")
    filters = []
    if team_id is not None:
        filters.append(Case.team_id == team_id)
    if team_ids is not None:
        filters.append(Case.team_id.in_(sorted(set(team_ids)) or [-1]))
    if case_ids is not None:
        filters.append(Deadline.case_id.in_(case_ids))
    stmt = (
        select(Deadline.id, Deadline.case_id, Case.ext_id, Deadline.duty, Deadline.seq, Deadline.regime,
               Deadline.citation, Deadline.due, Investigation.kind, Notification.reassessment_reasoning_recorded,
               Case.team_id)
        .join(Case, Case.id == Deadline.case_id)
        .outerjoin(Investigation, and_(Deadline.subject_kind == SubjectKind.INVESTIGATION,
                                       Investigation.id == Deadline.subject_id))
        .outerjoin(Notification, and_(Deadline.subject_kind == SubjectKind.NOTIFICATION,
                                      Notification.id == Deadline.subject_id))
        .where(in_period(period), *filters)
    )
    ids_in_period = select(Deadline.id).join(Case, Case.id == Deadline.case_id).where(in_period(period), *filters)
    found = session.execute(stmt).all()
    if not found:
        return []
    timelines = load_timelines(session, ids_in_period, known_at=known_at)
    return [DeadlineRow(
        deadline_id=deadline_id, case_id=case_id, case_ref=case_ref, duty=Duty(duty), seq=seq, regime=Regime(regime),
        citation=citation, due=due, status=status_at(timelines.get(deadline_id, ()), as_of),
        investigation_kind=InvestigationKind(inv_kind) if inv_kind is not None else None,
        reasoning_recorded=reasoning, team_id=team,
    ) for deadline_id, case_id, case_ref, duty, seq, regime, citation, due, inv_kind, reasoning, team in found]


def unsettled_notes(session: Session, rows: Sequence[DeadlineRow], *, as_of: datetime,
                    known_at: datetime | None) -> tuple[str, ...]:
    """Danish notes on the deadlines due by ``as_of`` that have no status then, naming the cause."""
    missing = [r for r in rows if r.status is None and r.due <= as_of]
    if not missing:
        return ()
    first = first_recorded(session, [r.deadline_id for r in missing])
    later = [r for r in missing if known_at is not None and first.get(r.deadline_id, known_at) > known_at]
    early = [r for r in missing if r not in later]
    notes = []
    if later:
        notes.append(f"{len(later)} frist(er) med forfald i perioden tælles ikke: watchdog registrerede dem først "
                     f"efter {format_local(known_at)} (opgørelsen er som kendt på det tidspunkt).")
    if early:
        notes.append(f"{len(early)} frist(er) med forfald i perioden tælles ikke: hændelsesloggen har ingen status "
                     f"for dem pr. {format_local(as_of)} (loggen fra før version 0006 kendte kun "
                     "registreringstidspunktet). En genberegning af sagerne skriver deres historik.")
    return tuple(notes)


def barometer_report(
    session: Session, period: Period, *, now: datetime, as_of: datetime | None = None,
    team: str | None = None, municipality: str = "Kommune", known_at: datetime | None = None,
    replay_all: bool = False,
) -> BarometerReport:
    """Load and compute: the report as the CLI, the API and the web app serve it.

    ``as_of``: the instant in the cases the statuses are taken at (default: the period's end, or
    ``known_at``/``now`` while the period runs). ``known_at``: only what the outcome log had
    recorded by then, to reproduce a report printed at that instant (default: all it knows).

    The cases with a status event after ``as_of`` (or recorded after ``known_at``) are replayed
    from the outcome log; every other case is counted in the database from its deadline rows
    (``watchdog.reports.barometer_sql``). ``replay_all``: replay every case instead (the same
    numbers, slower: the reference the counting in the database is tested against)."""
    found_team = find_team(session, team)
    if known_at is not None:
        known_at = ensure_aware(known_at, what="known_at")
    as_of = (ensure_aware(as_of, what="as_of") if as_of is not None
             else default_as_of(period, known_at if known_at is not None else now))
    if as_of <= period.start_instant:
        raise ReportInputError(
            f"the as-of instant {as_of.isoformat()} is not after the period's start {period.start}")
    team_id = found_team.id if found_team else None
    counted = None
    replayed = None
    if not replay_all:
        replayed = replayed_cases(period, as_of=as_of, known_at=known_at, team_id=team_id)
        # Usually few (none while the period runs): read once, for both queries below, as a list;
        # many (a period long past) stay a select.
        few = session.execute(replayed.distinct().limit(REPLAYED_AS_LIST + 1)).scalars().all()
        if len(few) <= REPLAYED_AS_LIST:
            replayed = sorted(few)
        counted = count_in_sql(session, period, as_of=as_of, team_id=team_id, known_at=known_at,
                               replayed_ids=replayed if isinstance(replayed, list) else None)
    rows = [] if replayed == [] else load_barometer_rows(session, period, as_of=as_of, known_at=known_at,
                                                         team_id=team_id, case_ids=replayed)
    report = compute_barometer(rows, period, as_of=as_of, municipality=municipality,
                               team=found_team.name if found_team else None, known_at=known_at,
                               counted_elsewhere=counted)
    notes = unsettled_notes(session, rows, as_of=as_of, known_at=known_at)
    return replace(report, notes=(*notes, *report.notes)) if notes else report
