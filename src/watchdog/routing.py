"""Stage 3, alert planning's routing: who receives a deadline's alerts, on which channel.

Pure: no database, no clock, no network. ``RoutingFacts`` holds the case-store rows routing reads
(workers, teams, absences, which team a case belongs to); ``Router`` answers, on the local date
of ``now``, who gets a warning, an escalation, a reminder or the second escalation; ``alerts_for``
turns a stage and its targets into outbox rows, one per recipient and channel, each with its
unique key. ``watchdog.planning`` decides *when*; this module decides *to whom*.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from watchdog.casestore import WorkerRole
from watchdog.outbox import AlertKind, Channel, NewAlert, alert_key
from watchdog.rules.types import Duty

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingFacts:
    """Who may receive what. Workers, teams and absences are case-store rows (or look-alikes)."""

    workers: Mapping[int, Any]  # worker id → Worker
    teams: Mapping[int, Any]  # team id → Team
    case_teams: Mapping[int, int]  # case id → team id
    absences: Sequence[Any] = ()  # Absence rows (inclusive local dates)
    planned: frozenset[tuple[int, str]] | set[tuple[int, str]] = field(default_factory=frozenset)
    # deadline id → end of its open "jeg er på sagen" (see watchdog.acknowledgements.silences)
    acknowledged: Mapping[int, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    """One recipient of one alert, before it is split into channels."""

    worker_id: int | None
    email: str | None
    teams_url: str | None

class Router:
    """Who receives a deadline's alerts, on the local date of ``now``."""

    def __init__(self, facts: RoutingFacts, policy, *, today: date):
        self.facts = facts
        self.today = today
        self.absent: dict[int, Any] = {}
        for absence in facts.absences:
            if absence.starts_on <= today <= absence.ends_on:
                self.absent[absence.worker_id] = absence
        by_ext = {w.ext_id: w for w in facts.workers.values()}
        self.reviewers = []
        for ext_id in policy.reviewers:
            worker = by_ext.get(ext_id)
            if worker is None or not worker.active:
                log.warning("alerts.reviewers: no active worker with ext_id %r", ext_id)
                continue
            self.reviewers.append(worker)
        # Indexed once: scanning every worker per deadline is quadratic at national scale
        # (3,500 workers × 100,000 deadlines).
        self._leaders: dict[int | None, list[Any]] = {}
        self._second_level: list[_Target] = []
        for w in sorted(facts.workers.values(), key=lambda w: w.id):
            if w.active and WorkerRole(w.role) == WorkerRole.LEADER:
                self._leaders.setdefault(w.team_id, []).append(w)
            elif w.active and WorkerRole(w.role) == WorkerRole.HEAD:
                self._second_level.append(_worker_target(w))
        for address in policy.second_escalation_addresses:
            teams = "://" in address
            self._second_level.append(_Target(None, None if teams else address, address if teams else None))

    def _team(self, deadline):
        team_id = self.facts.case_teams.get(deadline.case_id)
        return team_id, self.facts.teams.get(team_id) if team_id is not None else None

    def leaders(self, deadline) -> list[Any]:
        team_id, _team = self._team(deadline)
        return list(self._leaders.get(team_id, ()))

    def caseworker_targets(self, deadline) -> list[_Target]:
        worker = self.facts.workers.get(deadline.responsible_worker_id) if deadline.responsible_worker_id else None
        if worker is not None and worker.active:
            absence = self.absent.get(worker.id)
            if absence is None:
                return [_worker_target(worker)]
            substitute = self.facts.workers.get(absence.substitute_id) if absence.substitute_id else None
            if substitute is not None and substitute.active and substitute.id not in self.absent:
                return [_worker_target(substitute)]
        return self.leader_targets(deadline)

    def leader_targets(self, deadline) -> list[_Target]:
        return [_worker_target(w) for w in self.leaders(deadline)]

    def second_level_targets(self) -> list[_Target]:
        """The second escalation step: the head(s) of unit and the configured addresses."""
        return _unique(list(self._second_level))

    def warning_targets(self, deadline) -> list[_Target]:
        targets = self.caseworker_targets(deadline)
        duty = Duty(deadline.duty)
        if duty == Duty.REASSESSMENT:
            targets += [_worker_target(w) for w in self.reviewers]
        if duty == Duty.ASSESSMENT_24H:
            _team_id, team = self._team(deadline)
            if team is not None and (team.duty_email or team.duty_teams_url):
                targets.append(_Target(None, team.duty_email, team.duty_teams_url))
        return _unique(targets)


def _worker_target(worker) -> _Target:
    return _Target(worker.id, worker.email, worker.teams_workflow_url)


def _unique(targets: list[_Target]) -> list[_Target]:
    seen: set = set()
    out = []
    for t in targets:
        ident = t.worker_id if t.worker_id is not None else (t.email, t.teams_url)
        if ident not in seen:
            seen.add(ident)
            out.append(t)
    return out


def alerts_for(deadline_id: int, kind: AlertKind, stage: str, send_at: datetime,
                targets: list[_Target]) -> list[NewAlert]:
    alerts = []
    for target in targets:
        for channel, address in ((Channel.EMAIL, target.email), (Channel.TEAMS, target.teams_url)):
            if not address:
                continue
            who = target.worker_id if target.worker_id is not None else address
            alerts.append(NewAlert(
                key=alert_key(deadline_id, stage, who, channel), kind=kind, stage=stage,
                recipient_address=address, channel=channel, send_after=send_at,
                deadline_id=deadline_id, recipient_worker_id=target.worker_id,
            ))
    return alerts
