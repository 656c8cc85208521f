"""The orchestration: one poll round, calling the stages in order; and ``tick``, a poll and a
delivery round (``delivery_round.deliver``) together.

I/O: the database. The work of each stage is in its own module; this one only calls them, top
to bottom::

    poll(now):     recompute.poll_deadlines      recompute the dirty cases, mark breaches; a case
                                                 whose rules raise costs only itself
                   ops_alerts                    an OPS alert once per such case
                   planning.plan                 which alerts are due now, to whom (pure),
                                                 for the deadlines whose next_alert_at has come
                   outbox.enqueue                store them once each (unique key)
                   intake.silence, reports.digest   their own alerts, into the same outbox

The delivery round (claim, render, send through Apprise, record) is ``watchdog.delivery_round``.
The scheduler (``watchdog run``) and ``watchdog tick`` call ``poll`` and ``deliver`` with
``clock.utcnow()``; tests pass ``now`` in. Several replicas may run these at once: the outbox's
unique key and its claims keep every alert single.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from watchdog import absences as web_absences
from watchdog import (
    acknowledgement_alerts, acknowledgements, deadline_marks, deadlines, ops_alerts, outbox, planning,
    recompute,
)
from watchdog.casestore import Case, Team, Worker, WorkerRole
from watchdog.clock import ensure_aware, local_date
from watchdog.db import session_scope
from watchdog.deadlines import Deadline
from watchdog.delivery_round import DeliveryReport, deliver
from watchdog.intake.silence import check_intake_silence
from watchdog.ops import heartbeat
from watchdog.outbox import NewAlert
from watchdog.reports import daily_digest
from watchdog.reports.digest import enqueue_weekly_digests
from watchdog.rules.calendar import is_non_working_day
from watchdog.rules.types import Duty, Status

log = logging.getLogger(__name__)

_PLANNABLE = (Status.OPEN, Status.BREACHED, Status.EXCEPTED)


@dataclass
class PollReport:
    cases_recomputed: int = 0
    cases_failed: int = 0  # cases whose rules raised: left dirty, tried again next poll
    deadlines_written: int = 0
    status_changes: int = 0
    planned: int = 0
    enqueued: int = 0
    intake_silence_alerts: int = 0
    digests: int = 0
    ack_end_notices: int = 0
    daily_digests: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- the poll -------------------------------------------------------------------------------

def poll(engine: Engine, settings, *, now: datetime, replica: str | None = None) -> PollReport:
    """One poll round: deadlines → planning → outbox, then the intake and digest checks.

    The deadline and planning steps must succeed (their exception propagates, so the scheduler
    logs it and ``watchdog tick`` exits non-zero); the intake and digest checks are independent
    of them and of each other, so one failing is logged in the report and the others still run.
    """
    now = ensure_aware(now, what="now")
    replica = replica or heartbeat.default_replica_name()
    started = time.monotonic()
    report = PollReport()
    try:
        with session_scope(engine) as session:
            stats = recompute.poll_deadlines(session, now=now, settings=settings)
        report.cases_recomputed = stats.cases_recomputed
        report.cases_failed = stats.cases_failed
        report.deadlines_written = stats.deadlines_written
        report.status_changes = stats.status_changes
        with session_scope(engine) as session:
            alerts = plan_due_alerts(session, settings, now=now)
            report.planned = len(alerts)
            report.enqueued += outbox.enqueue(session, alerts, now=now)
            report.enqueued += ops_alerts.report_recompute_failures(session, settings, now=now)
    except Exception as exc:
        heartbeat.round_finished(engine, settings, replica=replica, ok=False, now=now,
                                 duration_s=time.monotonic() - started, error=_one_line(exc))
        raise
    for name, step in (("intake_silence_alerts", check_intake_silence), ("digests", enqueue_weekly_digests),
                       ("ack_end_notices", acknowledgement_alerts.handle_ended),
                       ("daily_digests", daily_digest.enqueue_daily_digests)):
        try:
            with session_scope(engine) as session:
                setattr(report, name, step(session, now=now, settings=settings))
        except Exception as exc:
            log.exception("poll: %s failed", step.__name__)
            report.errors.append(f"{step.__name__}: {_one_line(exc)}")
    heartbeat.round_finished(engine, settings, replica=replica, ok=report.ok, now=now,
                             duration_s=time.monotonic() - started,
                             error="; ".join(report.errors) or None)
    log.info("poll: %d cases recomputed, %d cases failed, %d status changes, %d alerts planned (%d new), "
             "%d intake-silence alerts, %d digests", report.cases_recomputed, report.cases_failed,
             report.status_changes, report.planned, report.enqueued, report.intake_silence_alerts,
             report.digests)
    return report


class OpenDeadline(NamedTuple):
    """The columns of a deadline that planning reads: plain rows, not ORM objects (at national
    scale there are tens of thousands of open deadlines)."""

    id: int
    case_id: int
    duty: Duty
    status: Status
    clock_start: datetime
    due: datetime
    met_at: datetime | None
    responsible_worker_id: int | None
    next_alert_at: datetime | None
    first_seen_at: datetime | None = None


#: Bump when planning's stages or times change in a way the alert policy does not show: every
#: deadline is then planned afresh once (as after a change of ``[alerts]``).
PLANNING_VERSION = 2  # 2: decaying reminder cadence, backlog, second escalation
_PLANNING_STATE = "planning"


def planning_fingerprint(settings) -> str:
    """A hash of what decides when alerts are due: the alert policy and the planner's version."""
    text = f"{PLANNING_VERSION}|{settings.alerts.model_dump_json()}"
    return hashlib.sha256(text.encode()).hexdigest()


def plan_due_alerts(session: Session, settings, *, now: datetime, everything: bool = False) -> list[NewAlert]:
    """Gather the routing facts from the store and ask planning (pure) what is due now.

    Incremental: only deadlines whose ``next_alert_at`` has come are planned (a deadline the poll
    just wrote has it set to that poll's ``now``), and each gets its next time back; the cost of
    a poll grows with what is due, not with the store. A changed alert policy (or
    ``everything=True``) plans every open, breached and excepted deadline once.
    Writes ``next_alert_at`` and the planning state; does not commit.
    """
    now = ensure_aware(now, what="now")
    everything = _policy_changed(session, settings, now) or everything
    query = select(Deadline.id, Deadline.case_id, Deadline.duty, Deadline.status, Deadline.clock_start,
                   Deadline.due, Deadline.met_at, Deadline.responsible_worker_id, Deadline.next_alert_at,
                   Deadline.first_seen_at)
    if everything:
        query = query.where(Deadline.status.in_(_PLANNABLE))
    else:
        # The next_alert_at index alone (closed deadlines have none): with the status in the
        # WHERE clause too, SQLite chose the (status, due) index and read every open deadline.
        query = query.where(Deadline.next_alert_at <= now)
    due_now = [d for d in map(OpenDeadline._make, session.connection().execute(query)) if d.status in _PLANNABLE]
    if not due_now:
        return []
    result = _plan_isolated(session, settings, due_now, _routing_facts(session, settings, due_now, now=now),
                            now=now)
    # A deadline whose planning failed has no next time: it keeps its own, and is tried again.
    _store_next_times(session, [d for d in due_now if d.id in result.next_at], result.next_at)
    return result.alerts


def _plan_isolated(session: Session, settings, due_now: list[OpenDeadline], routing: planning.RoutingFacts, *,
                   now: datetime) -> planning.Plan:
    """``planning.plan``, but a deadline whose planning raises (a due time in late 9999 overflows
    the reminder arithmetic) costs only itself: it is planned again on its own, recorded as its
    case's failure (``deadline_marks``: health, metric, one ops alert) and keeps its
    ``next_alert_at``, so the next poll tries again. Every other deadline is planned."""
    def plan(deadlines: list[OpenDeadline]) -> planning.Plan:
        return planning.plan(deadlines, routing, settings.alerts, now=now, is_working_day=is_warning_day)

    known_failures = deadline_marks.any_failures(session, stage=deadline_marks.PLANNING)
    try:
        result = plan(due_now)
    except Exception:  # noqa: BLE001 - find the deadline(s) at fault, plan the rest
        log.warning("planning: planning %d deadlines together failed; planning each on its own", len(due_now))
    else:
        if known_failures:
            deadline_marks.forget_failures(session, {d.case_id for d in due_now}, stage=deadline_marks.PLANNING)
        return result
    alerts: list[NewAlert] = []
    next_at: dict[int, datetime | None] = {}
    failures: dict[int, BaseException] = {}
    for deadline in due_now:
        try:
            one = plan([deadline])
        except Exception as exc:  # noqa: BLE001
            failure = RuntimeError(f"alert planning of deadline {deadline.id} ({deadline.duty}): "
                                   f"{deadline_marks.describe(exc)}")
            failure.__cause__ = exc
            failures.setdefault(deadline.case_id, failure)
            continue
        alerts.extend(one.alerts)
        next_at.update(one.next_at)
    deadline_marks.record_failures(session, failures, now=now, stage=deadline_marks.PLANNING)
    if known_failures:
        deadline_marks.forget_failures(session, {d.case_id for d in due_now} - set(failures),
                                       stage=deadline_marks.PLANNING)
    alerts.sort(key=lambda a: (a.send_after, a.key))
    return planning.Plan(alerts, next_at)


def _policy_changed(session: Session, settings, now: datetime) -> bool:
    """Whether the alert policy differs from the one the stored ``next_alert_at`` were computed
    with; if so, records the new one (the caller then plans everything)."""
    fingerprint = planning_fingerprint(settings)
    if deadlines.poll_state(session, _PLANNING_STATE, now).fingerprint == fingerprint:
        return False
    session.execute(update(deadlines.PollState).where(deadlines.PollState.name == _PLANNING_STATE)
                    .values(fingerprint=fingerprint, polled_at=now))
    log.info("planning: the alert policy is new or changed; planning every open deadline afresh")
    return True


def _routing_facts(session: Session, settings, due_now: list[OpenDeadline], *, now: datetime
                   ) -> planning.RoutingFacts:
    """Who may receive alerts about these deadlines: only the rows routing can reach (their
    cases' teams and those teams' leaders, the responsible workers, substitutes, reviewers)."""
    case_ids = sorted({d.case_id for d in due_now})
    case_teams: dict[int, int] = {}
    for chunk in deadlines.chunks(case_ids, 1000):
        case_teams.update(session.execute(select(Case.id, Case.team_id).where(Case.id.in_(chunk))).all())
    today = local_date(now)
    absences = web_absences.absences_on(session, today)  # a web row overrides an imported one
    team_ids = sorted(set(case_teams.values()))
    worker_ids = sorted({d.responsible_worker_id for d in due_now if d.responsible_worker_id is not None}
                        | {a.substitute_id for a in absences if a.substitute_id is not None})
    # Plain rows with the columns routing reads (not ORM objects: a poll after a busy import
    # touches most teams), and only the workers routing can reach: the responsible ones, their
    # substitutes, the teams' leaders and the reviewers.
    columns = select(Worker.id, Worker.ext_id, Worker.team_id, Worker.role, Worker.active, Worker.email,
                     Worker.teams_workflow_url)
    workers: dict[int, Any] = {}
    for chunk in deadlines.chunks(team_ids, 1000):
        workers.update((w.id, w) for w in session.execute(
            columns.where(Worker.team_id.in_(chunk), Worker.role == WorkerRole.LEADER)))
    for chunk in deadlines.chunks([i for i in worker_ids if i not in workers], 1000):
        workers.update((w.id, w) for w in session.execute(columns.where(Worker.id.in_(chunk))))
    if settings.alerts.reviewers:
        workers.update((w.id, w) for w in session.execute(columns.where(Worker.ext_id.in_(settings.alerts.reviewers))))
    if settings.alerts.second_escalation_days is not None:  # the head(s) of unit
        workers.update((w.id, w) for w in session.execute(columns.where(Worker.role == WorkerRole.HEAD)))
    teams = {}
    for chunk in deadlines.chunks(team_ids, 1000):
        teams.update((t.id, t) for t in session.exec(select(Team).where(Team.id.in_(chunk))))
    return planning.RoutingFacts(workers=workers, teams=teams, case_teams=case_teams, absences=absences,
                                 planned=outbox.planned_stages(session, [d.id for d in due_now]),
                                 acknowledged=acknowledgements.active_until(session, [d.id for d in due_now], now=now))


def _store_next_times(session: Session, planned: list[OpenDeadline], next_at: dict) -> None:
    """Move each planned deadline's ``next_alert_at`` on, unless the row changed meanwhile (a
    concurrent poll recomputed it: its own ``now`` stays, so it is planned again)."""
    table = Deadline.__table__
    c = table.c
    changes = [{"b_id": d.id, "b_seen": d.next_alert_at, "b_status": d.status, "b_due": d.due,
                "b_next": next_at.get(d.id)} for d in planned if next_at.get(d.id) != d.next_alert_at]
    if changes and session.get_bind().dialect.name == "postgresql":
        # One statement over arrays, not one UPDATE a row: at go-live (or after a policy change)
        # that is every open deadline, and psycopg's executemany sends each on its own.
        session.execute(sql_text(
            f"UPDATE deadline AS d SET next_alert_at = v.next_at FROM unnest(CAST(:ids AS INTEGER[]), "
            f"CAST(:seen AS TIMESTAMPTZ[]), CAST(:statuses AS {c.status.type.name}[]), CAST(:dues AS TIMESTAMPTZ[]), "
            "CAST(:nexts AS TIMESTAMPTZ[])) AS v(id, seen, status, due, next_at) WHERE d.id = v.id AND "
            "d.next_alert_at IS NOT DISTINCT FROM v.seen AND d.status = v.status AND d.due = v.due"),
            {"ids": [ch["b_id"] for ch in changes], "seen": [ch["b_seen"] for ch in changes],
             "statuses": [Status(ch["b_status"]).name for ch in changes], "dues": [ch["b_due"] for ch in changes],
             "nexts": [ch["b_next"] for ch in changes]})
    elif changes:
        session.execute(update(table).where(
            c.id == bindparam("b_id"), c.next_alert_at.is_not_distinct_from(bindparam("b_seen")),
            c.status == bindparam("b_status"), c.due == bindparam("b_due"),
        ).values(next_alert_at=bindparam("b_next")), changes)


def is_warning_day(day) -> bool:
    """A day warnings may go out on: a hverdag that is not Grundlovsdag, 24 or 31 December."""
    return not is_non_working_day(day)


def tick(engine: Engine, settings, *, now: datetime, transport, worker_name: str | None = None,
         clock: Callable[[], datetime] | None = None,
         replica: str | None = None) -> tuple[PollReport, DeliveryReport]:
    """One poll and one delivery round (``watchdog tick``, for cron or a Kubernetes CronJob).

    ``replica`` names the heartbeat row (stable across runs); ``worker_name`` the claims (unique
    per process, so two overlapping ticks never take each other's claims for their own)."""
    worker_name = worker_name or heartbeat.default_replica_name()
    poll_report = poll(engine, settings, now=now, replica=replica or worker_name)
    return poll_report, deliver(engine, settings, now=now, transport=transport,
                                worker_name=worker_name, clock=clock)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
