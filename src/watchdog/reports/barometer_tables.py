"""The barometer's tables, pure: the period's deadlines (or their counts) in, Ankestyrelsen's tables out.

``compute_barometer`` takes the period's deadlines with their status as of the report's instant
(``DeadlineRow``) and gives a ``BarometerReport`` of plain dataclasses, which the renderers in
``watchdog.reports.output`` write in every format with the same numbers. Between the two sits a
``Tally``: per question, the cases counted by answer, month and paragraph. ``tally_rows`` makes
one from rows; ``watchdog.reports.barometer_sql`` makes one in the database for the deadlines
whose status is already final by the as-of instant; tallies of disjoint sets of cases add up.
The counting rules are in ``watchdog.reports.barometer``'s docstring.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from watchdog.casestore import InvestigationKind
from watchdog.clock import ensure_aware, end_of_local_day, local_date, local_midnight
from watchdog.reports import ReportInputError
from watchdog.reports.national import NationalFigure, figures_for
from watchdog.reports.questions import (
    JA, MONTHS_DA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING, QUESTIONS, QuestionSpec,
)
from watchdog.rules.citations import citation_for
from watchdog.rules.types import Duty, Regime, Status


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


Month = tuple[int, int]  # (year, month) of the due day


@dataclass
class Tally:
    """Per question (``QuestionSpec.key``): the cases counted, by (answer, month, paragraph), and
    the paragraphs of every deadline the question applied to (shown when no case counted)."""

    counted: dict[str, Counter[tuple[str, Month, str]]] = field(default_factory=lambda: defaultdict(Counter))
    cited: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, other: Tally) -> Tally:
        """Both tallies together (they must count disjoint sets of cases)."""
        out = Tally()
        for part in (self, other):
            for key, counts in part.counted.items():
                out.counted[key].update(counts)
            for key, cited in part.cited.items():
                out.cited[key] |= cited
        return out


def tally_rows(rows: Iterable[DeadlineRow], *, as_of: datetime,
               specs: Sequence[QuestionSpec] = QUESTIONS) -> Tally:
    """Count ``rows`` case by case: a case's first counted deadline (earliest due) of a question
    is its answer."""
    rows = list(rows)
    tally = Tally()
    for spec in specs:
        relevant = [r for r in rows if applies(spec, r)]
        per_case: dict[int, tuple[DeadlineRow, str]] = {}
        for r in sorted(relevant, key=lambda r: (r.due, r.deadline_id)):
            answer = answer_for(spec, r, as_of)
            if answer is not None and r.case_id not in per_case:
                per_case[r.case_id] = (r, answer)
        counts = tally.counted[spec.key]
        for r, answer in per_case.values():
            d = due_day(r.due)
            counts[(answer, (d.year, d.month), r.citation)] += 1
        tally.cited[spec.key].update(r.citation for r in relevant)
    return tally


def _citation_text(spec: QuestionSpec, found: set[str], period: Period) -> str:
    """The paragraph(s) the period's deadlines were computed under, or what the period spans."""
    if found:
        return " / ".join(sorted(found, key=lambda c: (not c.startswith("SEL"), c)))
    regimes = []
    for day in (period.start, period.end):
        regime = Regime.SEL if day < date(2024, 1, 1) else Regime.BL
        if regime not in regimes:
            regimes.append(regime)
    variant = "later" if spec.later_follow_ups_only else None
    return " / ".join(citation_for(spec.duty, r, variant).text for r in regimes)


def month_end(year: int, month: int) -> datetime:
    return local_midnight(date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1))


def due_day(due: datetime) -> date:
    # A duty due "on a date" is due at the next local midnight: it belongs to the date before.
    return local_date(due - timedelta(microseconds=1))


def _table(number: int, spec: QuestionSpec, tally: Tally, period: Period, as_of: datetime) -> BarometerTable:
    cases = tally.counted.get(spec.key, Counter())
    counts: Counter[str] = Counter()
    by_month: dict[Month, Counter[str]] = defaultdict(Counter)
    counted_cited: set[str] = set()
    for (answer, month, citation), n in cases.items():
        if n:
            counts[answer] += n
            by_month[month][answer] += n
            counted_cited.add(citation)
    answers = list(spec.answers) + sorted(a for a in counts if a not in spec.answers)
    total = sum(counts.values())
    answer_rows = tuple(AnswerRow(a, counts[a], percent_of(counts[a], total)) for a in answers)
    trend = tuple(
        TrendPoint(
            month=f"{y:04d}-{m:02d}", label=f"{MONTHS_DA[m - 1]} {y}",
            total=sum(by_month[(y, m)].values()), ja=by_month[(y, m)][JA],
            percent=percent_of(by_month[(y, m)][JA], sum(by_month[(y, m)].values())),
            partial=month_end(y, m) > as_of,
        )
        for (y, m) in period.months()
    )
    citation = _citation_text(spec, counted_cited or tally.cited.get(spec.key, set()), period)
    return BarometerTable(
        key=spec.key, number=number, duty=spec.duty,
        question=spec.question.format(citation=citation), citation=citation,
        applies_to=spec.applies_to, ast_table=spec.ast_table, rows=answer_rows, total=total,
        trend=trend, national=figures_for(spec.key, range(period.start.year, period.end.year + 1)),
    )


def compute_barometer(
    rows: Iterable[DeadlineRow],
    period: Period,
    *,
    as_of: datetime,
    municipality: str = "Kommune",
    team: str | None = None,
    specs: Sequence[QuestionSpec] = QUESTIONS,
    known_at: datetime | None = None,
    counted_elsewhere: Tally | None = None,
) -> BarometerReport:
    """The barometer tables for ``rows`` (the period's deadlines with their as-of status), plus
    the cases ``counted_elsewhere`` (a tally of other cases than those of ``rows``). Pure."""
    as_of = ensure_aware(as_of, what="as_of")
    rows = list(rows)
    tally = tally_rows(rows, as_of=as_of, specs=specs)
    if counted_elsewhere is not None:
        tally = tally.add(counted_elsewhere)
    tables = tuple(_table(number, spec, tally, period, as_of) for number, spec in enumerate(specs, start=1))
    not_logged = sum(1 for r in rows if r.status is None and r.due <= as_of)
    return BarometerReport(
        municipality=municipality, team=team, period=period, as_of=as_of, tables=tables,
        not_logged=not_logged, notes=(FOOTER_DA,), known_at=known_at,
    )
