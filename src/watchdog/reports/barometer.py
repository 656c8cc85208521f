"""The barometer report: one table per duty in the form of Ankestyrelsen's Børnesagsbarometer.

``load_barometer_rows`` reads the deadlines of a period with their status as of an instant,
taken from the append-only outcome log (I/O: the database). ``compute_barometer`` is pure: rows
in, a ``BarometerReport`` of plain dataclasses out, which the renderers in
``watchdog.reports.output`` write in every format with the same numbers.

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

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from sqlalchemy import and_
from sqlmodel import Session, select

from watchdog.casestore import Case, Investigation, InvestigationKind, Notification, Team
from watchdog.clock import ensure_aware, end_of_local_day, format_local, local_date, local_midnight
from watchdog.deadlines import Deadline
from watchdog.outcome_log import first_recorded, load_timelines, status_at
from watchdog.reports import ReportInputError
from watchdog.reports.national import NationalFigure, figures_for
from watchdog.rules.citations import citation_for
from watchdog.rules.types import Duty, Regime, Status, SubjectKind

from watchdog.reports.questions import (  # noqa: F401  (the answers are part of this module's API)
    MONTHS_DA, I_ALT, JA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING, QUESTIONS, QuestionSpec,
)


@dataclass(frozen=True)
class Period:
    """Calendar dates, both inclusive, in Europe/Copenhagen."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ReportInputError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def start_instant(self) -> datetime:
        return local_midnight(self.start)

    @property
    def end_instant(self) -> datetime:
        return end_of_local_day(self.end)

    def months(self) -> list[tuple[int, int]]:
        out, (y, m) = [], (self.start.year, self.start.month)
        while (y, m) <= (self.end.year, self.end.month):
            out.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


@dataclass(frozen=True)
class DeadlineRow:
    """One deadline of the period with its status as of the report's instant (None: nothing logged)."""

    deadline_id: int
    case_id: int
    case_ref: str
    duty: Duty
    seq: int
    regime: Regime
    citation: str
    due: datetime
    status: Status | None
    investigation_kind: InvestigationKind | None = None
    reasoning_recorded: bool | None = None  # Notification.reassessment_reasoning_recorded
    team_id: int | None = None  # the case's team


@dataclass(frozen=True)
class AnswerRow:
    answer: str
    count: int
    percent: int | None  # None when the question applies to no case


@dataclass(frozen=True)
class TrendPoint:
    month: str  # "2024-03"
    label: str  # "mar 2024"
    total: int
    ja: int
    percent: int | None  # the "Ja" percent of the month's cases
    partial: bool = False  # the month had not ended at the as-of instant: a provisional figure


@dataclass(frozen=True)
class BarometerTable:
    key: str
    number: int
    duty: Duty
    question: str
    citation: str
    applies_to: str
    ast_table: str | None
    rows: tuple[AnswerRow, ...]
    total: int
    trend: tuple[TrendPoint, ...] = ()
    national: tuple[NationalFigure, ...] = ()  # Ankestyrelsen's figures for the period's years

    @property
    def title(self) -> str:
        return f"Tabel {self.number}. {self.question}"

    def count(self, answer: str) -> int:
        return next((r.count for r in self.rows if r.answer == answer), 0)

    def percent(self, answer: str) -> int | None:
        return next((r.percent for r in self.rows if r.answer == answer), None)


@dataclass(frozen=True)
class BarometerReport:
    municipality: str
    team: str | None
    period: Period
    as_of: datetime
    tables: tuple[BarometerTable, ...]
    not_logged: int = 0  # deadlines due by as_of with no status in the outcome log at as_of
    notes: tuple[str, ...] = field(default_factory=tuple)
    known_at: datetime | None = None  # as the outcome log knew it then (None: as known now)

    def table(self, key: str) -> BarometerTable:
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(key)


FOOTER_DA = (
    "Opgjort efter watchdogs hændelseslog. En frist hører til perioden, når dens forfaldstidspunkt "
    "ligger i perioden. Status er den seneste, loggen havde registreret på opgørelsestidspunktet; en "
    "frist, der da var overskredet uden at være registreret opfyldt, tæller som \"Nej\". Der tælles "
    "sager: har en sag flere frister til samme spørgsmål i perioden, tæller den første. Procenter er "
    "af de sager, spørgsmålet vedrører, afrundet til hele tal (halve op)."
)


def percent_of(count: int, total: int) -> int | None:
    """Whole-number percent, rounded half up (Ankestyrelsen: 1 of 6 → 17, 5 of 6 → 83)."""
    if total <= 0:
        return None
    # Integer arithmetic: floor(100*count/total + 1/2) without binary floating-point surprises.
    return (200 * count + total) // (2 * total)


def answer_for(spec: QuestionSpec, row: DeadlineRow, as_of: datetime) -> str | None:
    """The answer a deadline gives to its question as of ``as_of``, or None if it does not count."""
    status = row.status
    if status is None or status == Status.NOT_APPLICABLE:
        return None
    if status == Status.OPEN:
        if row.due > as_of:
            return None  # not yet due: no answer yet
        status = Status.BREACHED  # overdue but the poll had not marked it yet
    if spec.duty == Duty.REASSESSMENT:
        if status in (Status.MET, Status.MET_LATE):
            return NEJ_VURDERING if row.reasoning_recorded is False else JA
        if status == Status.EXCEPTED:
            return NEJ_LOVLIG
        return NEJ_GENVURDERING
    if status == Status.MET:
        return JA
    if status == Status.EXCEPTED:
        return NEJ_LOVLIG
    return NEJ  # met late or breached


def applies(spec: QuestionSpec, row: DeadlineRow) -> bool:
    if row.duty != spec.duty:
        return False
    if spec.duty == Duty.INVESTIGATION_4M and row.investigation_kind == InvestigationKind.UPDATE:
        return False
    if spec.first_follow_up_only and row.seq != 0:
        return False
    if spec.later_follow_ups_only and row.seq == 0:
        return False
    return True


def _citation_text(spec: QuestionSpec, rows: Sequence[DeadlineRow], period: Period) -> str:
    """The paragraph(s) the period's deadlines were computed under, or what the period spans."""
    found = sorted({r.citation for r in rows}, key=lambda c: (not c.startswith("SEL"), c))
    if found:
        return " / ".join(found)
    regimes = []
    for day in (period.start, period.end):
        regime = Regime.SEL if day < date(2024, 1, 1) else Regime.BL
        if regime not in regimes:
            regimes.append(regime)
    variant = "later" if spec.later_follow_ups_only else None
    return " / ".join(citation_for(spec.duty, r, variant).text for r in regimes)


def _month_end(year: int, month: int) -> datetime:
    return local_midnight(date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1))


def _due_day(due: datetime) -> date:
    # A duty due "on a date" is due at the next local midnight: it belongs to the date before.
    return local_date(due - timedelta(microseconds=1))


def compute_barometer(
    rows: Iterable[DeadlineRow],
    period: Period,
    *,
    as_of: datetime,
    municipality: str = "Kommune",
    team: str | None = None,
    specs: Sequence[QuestionSpec] = QUESTIONS,
    known_at: datetime | None = None,
) -> BarometerReport:
    """The barometer tables for ``rows`` (the period's deadlines with their as-of status). Pure."""
    as_of = ensure_aware(as_of, what="as_of")
    rows = list(rows)
    tables: list[BarometerTable] = []
    for number, spec in enumerate(specs, start=1):
        relevant = [r for r in rows if applies(spec, r)]
        # Ankestyrelsen counts cases: the earliest counted deadline of the period is the case's answer.
        per_case: dict[int, tuple[DeadlineRow, str]] = {}
        for r in sorted(relevant, key=lambda r: (r.due, r.deadline_id)):
            answer = answer_for(spec, r, as_of)
            if answer is not None and r.case_id not in per_case:
                per_case[r.case_id] = (r, answer)
        counts: dict[str, int] = defaultdict(int)
        for _row, answer in per_case.values():
            counts[answer] += 1
        answers = list(spec.answers) + sorted(a for a in counts if a not in spec.answers)
        total = len(per_case)
        answer_rows = tuple(AnswerRow(a, counts[a], percent_of(counts[a], total)) for a in answers)
        by_month: dict[tuple[int, int], list[str]] = defaultdict(list)
        for row, answer in per_case.values():
            d = _due_day(row.due)
            by_month[(d.year, d.month)].append(answer)
        trend = tuple(
            TrendPoint(
                month=f"{y:04d}-{m:02d}", label=f"{MONTHS_DA[m - 1]} {y}",
                total=len(by_month[(y, m)]), ja=by_month[(y, m)].count(JA),
                percent=percent_of(by_month[(y, m)].count(JA), len(by_month[(y, m)])),
                partial=_month_end(y, m) > as_of,
            )
            for (y, m) in period.months()
        )
        citation = _citation_text(spec, [r for r, _ in per_case.values()] or relevant, period)
        tables.append(BarometerTable(
            key=spec.key, number=number, duty=spec.duty,
            question=spec.question.format(citation=citation), citation=citation,
            applies_to=spec.applies_to, ast_table=spec.ast_table, rows=answer_rows, total=total,
            trend=trend, national=figures_for(spec.key, range(period.start.year, period.end.year + 1)),
        ))
    not_logged = sum(1 for r in rows if r.status is None and r.due <= as_of)
    return BarometerReport(
        municipality=municipality, team=team, period=period, as_of=as_of, tables=tuple(tables),
        not_logged=not_logged, notes=(FOOTER_DA,), known_at=known_at,
    )


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
    known_at: datetime | None = None, team_ids: Sequence[int] | None = None,
) -> list[DeadlineRow]:
    """The deadlines due in ``period`` (of one team's cases, of ``team_ids``', or all), with their
    status at the occurred instant ``as_of``, as the outcome log knew it at ``known_at`` (None: as
    known now). Two queries, however many teams: the rows carry their team (the digests group them)."""
    as_of = ensure_aware(as_of, what="as_of")
    where = [Deadline.due > period.start_instant, Deadline.due <= period.end_instant]
    if team_id is not None:
        where.append(Case.team_id == team_id)
    if team_ids is not None:
        where.append(Case.team_id.in_(sorted(set(team_ids)) or [-1]))
    # Plain rows, not ORM objects: for the digests this is the year's deadlines of every team.
    stmt = (
        select(Deadline.id, Deadline.case_id, Case.ext_id, Deadline.duty, Deadline.seq, Deadline.regime,
               Deadline.citation, Deadline.due, Investigation.kind, Notification.reassessment_reasoning_recorded,
               Case.team_id)
        .join(Case, Case.id == Deadline.case_id)
        .outerjoin(Investigation, and_(Deadline.subject_kind == SubjectKind.INVESTIGATION,
                                       Investigation.id == Deadline.subject_id))
        .outerjoin(Notification, and_(Deadline.subject_kind == SubjectKind.NOTIFICATION,
                                      Notification.id == Deadline.subject_id))
        .where(*where)
    )
    ids_in_period = select(Deadline.id).join(Case, Case.id == Deadline.case_id).where(*where)
    timelines = load_timelines(session, ids_in_period, known_at=known_at)
    found = session.execute(stmt)  # streamed: the rows are not held twice
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
) -> BarometerReport:
    """Load and compute: the report as the CLI, the API and the web app serve it.

    ``as_of``: the instant in the cases the statuses are taken at (default: the period's end, or
    ``known_at``/``now`` while the period runs). ``known_at``: only what the outcome log had
    recorded by then, to reproduce a report printed at that instant (default: all it knows)."""
    found_team = find_team(session, team)
    if known_at is not None:
        known_at = ensure_aware(known_at, what="known_at")
    as_of = (ensure_aware(as_of, what="as_of") if as_of is not None
             else default_as_of(period, known_at if known_at is not None else now))
    if as_of <= period.start_instant:
        raise ReportInputError(
            f"the as-of instant {as_of.isoformat()} is not after the period's start {period.start}")
    rows = load_barometer_rows(session, period, as_of=as_of, known_at=known_at,
                               team_id=found_team.id if found_team else None)
    report = compute_barometer(rows, period, as_of=as_of, municipality=municipality,
                               team=found_team.name if found_team else None, known_at=known_at)
    notes = unsettled_notes(session, rows, as_of=as_of, known_at=known_at)
    return replace(report, notes=(*notes, *report.notes)) if notes else report
