"""The caseload report: active cases per team and per full-time caseworker.

Measured against Dansk Socialrådgiverforening's recommendation of 20–30 cases per full-time
caseworker on the children and family area (fewer for complex cases), with the extra full-time
posts needed to bring the caseload down to 30 and to 25, computed as the municipality's memo does:
890 active cases on 23.92 full-time posts is 37.2 cases per post; reaching 30 needs
890/30 − 23.92 = 5.75 more posts, reaching 25 needs 890/25 − 23.92 = 11.68.

``load_team_loads`` reads the case store (I/O); ``compute_caseload`` is pure.

- An **active case** was opened at or before the as-of instant and not closed by then.
- **Full-time equivalents** are the sum of ``Worker.fte`` of the team's active workers with the
  caseworker role (leaders, reviewers and inactive workers do not carry cases).
- Cases per full-time post are rounded half up to one decimal, extra posts to two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, or_
from sqlmodel import Session, select

from watchdog.casestore import Case, Team, Worker, WorkerRole
from watchdog.clock import ensure_aware
from watchdog.reports.barometer import find_team

RECOMMENDED_LOW = 20
RECOMMENDED_HIGH = 30
TARGETS = (30, 25)  # the two caseloads the memo computes extra posts for
SOURCE_DA = ("Dansk Socialrådgiverforening anbefaler 20-30 sager pr. fuldtidsansat socialrådgiver "
             "på børne- og familieområdet, færre ved komplekse sager.")
SOURCE_URL = "https://socialraadgiverne.dk/fag-og-debat/faglige-fokusomraader/sagstal/ds-vejledende-sagstal"

_ONE = Decimal("0.1")
_TWO = Decimal("0.01")


@dataclass(frozen=True)
class TeamLoad:
    team: str
    cases: int
    fte: float
    caseworkers: int


@dataclass(frozen=True)
class CaseloadRow:
    team: str
    cases: int
    caseworkers: int
    fte: Decimal  # two decimals
    per_fte: Decimal | None  # one decimal; None without any full-time equivalent
    extra_fte: dict[int, Decimal]  # target caseload → extra full-time posts needed (≥ 0)

    @property
    def verdict(self) -> str:
        """Danish: where the caseload stands against the recommendation."""
        if self.per_fte is None:
            return "ingen rådgivere" if self.cases else "-"
        if self.per_fte > RECOMMENDED_HIGH:
            return "over anbefalingen"
        if self.per_fte < RECOMMENDED_LOW:
            return "under anbefalingen"
        return "inden for anbefalingen"


@dataclass(frozen=True)
class CaseloadReport:
    municipality: str
    as_of: datetime
    rows: tuple[CaseloadRow, ...]
    total: CaseloadRow
    targets: tuple[int, ...] = TARGETS
    recommended: tuple[int, int] = (RECOMMENDED_LOW, RECOMMENDED_HIGH)


def _round(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


def caseload_row(team: str, cases: int, fte: float | Decimal, caseworkers: int,
                 targets: Iterable[int] = TARGETS) -> CaseloadRow:
    # Decimal from the text of the float: 23.92 stays 23.92, so 890/25 − 23.92 is exactly 11.68.
    fte_d = fte if isinstance(fte, Decimal) else Decimal(str(fte))
    per_fte = _round(Decimal(cases) / fte_d, _ONE) if fte_d > 0 else None
    extra = {t: max(Decimal("0.00"), _round(Decimal(cases) / Decimal(t) - fte_d, _TWO)) for t in targets}
    return CaseloadRow(team=team, cases=cases, caseworkers=caseworkers, fte=_round(fte_d, _TWO),
                       per_fte=per_fte, extra_fte=extra)


def compute_caseload(loads: Iterable[TeamLoad], *, as_of: datetime, municipality: str = "Kommune") -> CaseloadReport:
    """Cases per full-time caseworker per team and in all. Pure."""
    loads = list(loads)
    rows = tuple(caseload_row(l.team, l.cases, l.fte, l.caseworkers) for l in loads)
    total = caseload_row(
        "I alt", sum(l.cases for l in loads), sum((Decimal(str(l.fte)) for l in loads), Decimal(0)),
        sum(l.caseworkers for l in loads))
    return CaseloadReport(municipality=municipality, as_of=ensure_aware(as_of, what="as_of"), rows=rows, total=total)


def load_team_loads(session: Session, *, now: datetime, team: str | None = None) -> list[TeamLoad]:
    """Active cases and caseworker FTE per team, as of ``now``."""
    now = ensure_aware(now, what="now")
    found = find_team(session, team)
    teams = [found] if found else list(session.exec(select(Team).order_by(Team.name)).all())
    active = (Case.opened_at <= now) & or_(Case.closed_at.is_(None), Case.closed_at > now)
    cases = dict(session.exec(select(Case.team_id, func.count(Case.id)).where(active).group_by(Case.team_id)).all())
    fte: dict[int, float] = {}
    heads: dict[int, int] = {}
    for team_id, worker_fte in session.exec(
        select(Worker.team_id, Worker.fte)
        .where(Worker.active == True, Worker.role == WorkerRole.CASEWORKER, Worker.team_id.is_not(None))  # noqa: E712
    ).all():
        # Sum the text of each FTE as a Decimal: binary float sums drift (0.1 + 0.2).
        fte[team_id] = float(Decimal(str(fte.get(team_id, 0.0))) + Decimal(str(worker_fte)))
        heads[team_id] = heads.get(team_id, 0) + 1
    return [TeamLoad(t.name, int(cases.get(t.id, 0)), fte.get(t.id, 0.0), heads.get(t.id, 0)) for t in teams]


def caseload_report(session: Session, *, now: datetime, team: str | None = None,
                    municipality: str = "Kommune") -> CaseloadReport:
    return compute_caseload(load_team_loads(session, now=now, team=team), as_of=now, municipality=municipality)
