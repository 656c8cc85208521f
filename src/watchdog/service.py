"""The orchestration: one poll round and one delivery round, calling the stages in order.

I/O: the database, and the network through ``delivery.Transport``. The work of each stage is in
its own module; this one only calls them, top to bottom::

    poll(now):     deadlines.poll_deadlines      recompute the dirty cases, mark breaches; a case
                                                 whose rules raise costs only itself
                   ops_alerts                    an OPS alert once per such case
                   planning.plan                 which alerts are due now, to whom (pure),
                                                 for the deadlines whose next_alert_at has come
                   outbox.enqueue                store them once each (unique key)
                   intake.silence, reports.digest   their own alerts, into the same outbox

    deliver(now):  outbox.claim_due              claim due rows, one recipient+channel together
                   render.render_alerts          one Danish message per recipient and channel
                   delivery.Transport.send       Apprise: email or Teams
                   outbox.record_success/failure an attempt row each; retry with backoff, or dead
                                                 (only under the claim's token: a stale holder is dropped)
                   deadlines.record_alert_sent   the outcome log
                   (dead letter)                 ops_alerts: to settings.delivery.ops_urls

The scheduler (``watchdog run``) and ``watchdog tick`` call ``poll`` and ``deliver`` with
``clock.utcnow()``; tests pass ``now`` in. Several replicas may run these at once: the outbox's
unique key and its claims keep every alert single.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import bindparam, update
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from watchdog import absences as web_absences
from watchdog import (
    acknowledgement_alerts, acknowledgements, deadline_marks, deadlines, delivery, ops_alerts, outbox, planning,
    render,
)
from watchdog.casestore import Case, Team, Worker, WorkerRole
from watchdog.clock import ensure_aware, format_local, local_date
from watchdog.db import session_scope
from watchdog.deadlines import Deadline
from watchdog.intake.silence import check_intake_silence
from watchdog.message_context import message_context
from watchdog.ops import heartbeat, metrics
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, NewAlert
from watchdog.reports import daily_digest
from watchdog.reports.digest import enqueue_weekly_digests
from watchdog.rules.calendar import is_non_working_day
from watchdog.rules.types import Duty, Status
from watchdog.sensitive import contains_cpr

log = logging.getLogger(__name__)

# Deadline alerts are rendered from the deadline row at send time; the others carry their message.
DEADLINE_KINDS = frozenset({AlertKind.WARNING, AlertKind.ESCALATION, AlertKind.REMINDER})
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


@dataclass
class DeliveryReport:
    claimed: int = 0
    messages: int = 0
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0
    ops_alerts: int = 0
    released: int = 0
    stale: int = 0  # outcomes dropped: this worker's claim had expired and another had taken it


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
            stats = deadlines.poll_deadlines(session, now=now, settings=settings)
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


# --- delivery -------------------------------------------------------------------------------

def deliver(engine: Engine, settings, *, now: datetime, transport, worker_name: str,
            stop: threading.Event | None = None,
            clock: Callable[[], datetime] | None = None) -> DeliveryReport:
    """Deliver every due alert: claim, render, send, record. Returns what happened.

    ``stop`` (set on SIGTERM) is checked between messages: the send in progress finishes and is
    recorded, the claims not yet attempted are released for the next round or replica.
    ``clock`` (the daemon and ``watchdog tick`` pass ``clock.utcnow``) gives each claim batch of
    a long round its own instant: claimed with the round's start time, a late batch's claims
    would already be expired for the other replicas while this one is still sending them.
    Without it every batch uses ``now`` (tests, simulated time).
    """
    now = ensure_aware(now, what="now")
    report = DeliveryReport()
    while not (stop is not None and stop.is_set()):
        if clock is not None:
            now = ensure_aware(clock(), what="clock()")
        with Session(engine, expire_on_commit=False) as session:
            claimed = outbox.claim_due(session, now=now, worker_name=worker_name,
                                       claim_seconds=settings.delivery.claim_timeout_seconds,
                                       limit=settings.delivery.batch_size)
        if not claimed:
            break
        if len(claimed) >= settings.delivery.batch_size:
            claimed += _claim_rest_of_last_recipient(engine, settings, claimed, now=now, worker_name=worker_name)
        report.claimed += len(claimed)
        groups = _message_groups(claimed)
        for index, group in enumerate(groups):
            if stop is not None and stop.is_set():
                rest = [a for g in groups[index:] for a in g]
                with session_scope(engine) as session:
                    report.released += outbox.release(session, rest, worker_name=worker_name)
                break
            _deliver_one_message(engine, settings, group, now=now, transport=transport,
                                 worker_name=worker_name, report=report)
    if report.claimed:
        log.info("delivery: %d alerts in %d messages: %d sent, %d accepted, %d failed, %d dead, "
                 "%d cancelled", report.claimed, report.messages, report.sent, report.accepted,
                 report.failed, report.dead, report.cancelled)
    return report


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


def _claim_rest_of_last_recipient(engine: Engine, settings, claimed: list[Alert], *, now: datetime,
                                  worker_name: str) -> list[Alert]:
    """A full batch may have cut the last recipient's alerts in two (claims come ordered by
    recipient): claim the rest of them too, so that their backlog summary or list is one message."""
    last = claimed[-1]
    if AlertKind(last.kind) not in DEADLINE_KINDS:
        return []
    held = {a.id for a in claimed}
    with Session(engine, expire_on_commit=False) as session:
        rest = outbox.claim_due(session, now=now, worker_name=worker_name,
                                claim_seconds=settings.delivery.claim_timeout_seconds, limit=None,
                                recipient=(last.recipient_address, Channel(last.channel)))
    return [a for a in rest if a.id not in held]


def _message_groups(claimed: list[Alert]) -> list[list[Alert]]:
    """Deadline alerts of one recipient and channel become one message; the rest go one by one."""
    grouped: dict[tuple[str, Channel], list[Alert]] = defaultdict(list)
    singles: list[list[Alert]] = []
    for alert in claimed:
        if AlertKind(alert.kind) in DEADLINE_KINDS and alert.deadline_id is not None:
            grouped[(alert.recipient_address, Channel(alert.channel))].append(alert)
        else:
            singles.append([alert])
    return list(grouped.values()) + singles


def _cancel_moot(engine: Engine, group: list[Alert], report: DeliveryReport) -> list[Alert]:
    """Drop the alerts whose deadline closed after they were planned (typically while they waited
    for a retry): a caseworker must not be warned about a deadline they have met. Returns the rest."""
    keep, moot = [], []
    with session_scope(engine) as session:
        for claimed in group:
            deadline = session.get(Deadline, claimed.deadline_id) if claimed.deadline_id else None
            reason = _moot_reason(claimed, deadline)
            if reason is None:
                keep.append(claimed)
                continue
            # The claimed copy carries the claim's token: a claim lost meanwhile changes nothing.
            if outbox.record_cancelled(session, claimed, reason=reason):
                moot.append(claimed)
    report.cancelled += len(moot)
    return keep


def _moot_reason(alert: Alert, deadline: Deadline | None) -> str | None:
    if deadline is None or AlertKind(alert.kind) not in DEADLINE_KINDS:
        return None
    status = Status(deadline.status)
    if status.is_final:
        return f"the deadline is {status.value} since the alert was planned"
    if status == Status.EXCEPTED and AlertKind(alert.kind) != AlertKind.REMINDER:
        return "the deadline is excepted (lawful reason) since the alert was planned"
    if status == Status.EXCEPTED and deadline.met_at is not None:
        return "the excepted investigation has been finished since the alert was planned"
    return None


def _deliver_one_message(engine: Engine, settings, group: list[Alert], *, now: datetime, transport,
                         worker_name: str, report: DeliveryReport) -> None:
    group = _cancel_moot(engine, group, report)
    group = acknowledgement_alerts.hold_acknowledged(engine, group, now=now, worker_name=worker_name)
    kept = daily_digest.absorb_into_digest(engine, group, now=now)
    report.cancelled += len(group) - len(kept)
    group = kept
    if not group:
        return
    first = group[0]
    channel = Channel(first.channel)
    try:
        with Session(engine) as session:
            message, name, held = _build_message(session, settings, group, now=now)
        if held:
            # The net, one item at a time: only the offending alerts die; the others still go.
            _record(engine, settings, [a for a in group if a.id in held], _HELD_BACK, channel=channel,
                    now=now, worker_name=worker_name, report=report)
            group = [a for a in group if a.id not in held]
            if not group:
                return
        result = transport.send(message, delivery.Recipient(first.recipient_address, channel, name))
    except Exception as exc:  # a bug or a vanished row: record it on the alerts, never lose them
        log.exception("delivery: cannot send alerts %s", [a.id for a in group])
        result = delivery.SendResult(ok=False, detail=f"internal error: {_one_line(exc)}", permanent=True)
    report.messages += 1
    _record(engine, settings, group, result, channel=channel, now=now, worker_name=worker_name,
            report=report)


# What a held-back alert's attempt says: never the number itself (the ops alert repeats it).
_HELD_BACK = delivery.SendResult(
    ok=False, permanent=True,
    detail="held back, not sent: the case reference, case link or a name of this alert contains what "
           "looks like a CPR number (not repeated here); correct the case in the case system, then "
           "`watchdog outbox retry`")


def _record(engine: Engine, settings, group: list[Alert], result, *, channel: Channel, now: datetime,
            worker_name: str, report: DeliveryReport) -> None:
    """Record a send's outcome on its alerts, and count it in the report and the metrics."""
    # The message has left: its outcome must be recorded even if the database blips right now
    # (a PostgreSQL restart, a failover). Unrecorded, the claim would expire and another replica
    # would send the same message again.
    outcomes = _retry_on_database_error(
        lambda: _record_outcome(engine, settings, group, result, channel=channel, now=now,
                                worker_name=worker_name),
        what=f"recording the delivery of alerts {[a.id for a in group]}",
        give_up_after=settings.delivery.claim_timeout_seconds / 2)
    for outcome, count in outcomes.items():
        if outcome in ("ops_alerts", "stale"):
            setattr(report, outcome, getattr(report, outcome) + count)
            continue
        setattr(report, outcome, getattr(report, outcome) + count)
        for _ in range(count):
            metrics.record_delivery(channel.value, outcome)


def _record_outcome(engine: Engine, settings, group: list[Alert], result, *, channel: Channel,
                    now: datetime, worker_name: str) -> dict[str, int]:
    """One transaction: an attempt row and the new state of each alert of a sent message."""
    outcomes: dict[str, int] = defaultdict(int)
    dead: list[Alert] = []
    with session_scope(engine) as session:
        for claimed in group:
            # Recorded under the claim's token: if this process's claim expired and another replica
            # took the alert, its result stands and ours is logged and dropped ("stale").
            alert = Alert.model_validate(claimed.model_dump())  # a copy: a retry of this starts afresh
            if result.ok:
                if not outbox.record_success(session, alert, now=now, worker_name=worker_name,
                                             detail=result.detail, accepted_only=result.accepted_only):
                    outcomes["stale"] += 1
                    continue
                if alert.deadline_id is not None:
                    deadlines.record_alert_sent(session, deadline_id=alert.deadline_id, at=now,
                                                detail=f"{alert.kind} {alert.stage} via {channel}")
                outcome = "accepted" if result.accepted_only else "sent"
            else:
                state = outbox.record_failure(
                    session, alert, now=now, worker_name=worker_name, detail=result.detail,
                    permanent=result.permanent, max_attempts=settings.delivery.max_attempts,
                    backoff_base_seconds=settings.delivery.backoff_base_seconds,
                    backoff_max_seconds=settings.delivery.backoff_max_seconds)
                if state is None:
                    outcomes["stale"] += 1
                    continue
                outcome = "dead" if state == AlertState.DEAD else "failed"
                if state == AlertState.DEAD:
                    dead.append(alert)
            outcomes[outcome] += 1
        if dead:
            outcomes["ops_alerts"] += _report_dead_letters(session, settings, dead, now=now)
    return dict(outcomes)


def _retry_on_database_error(work, *, what: str, give_up_after: float, sleep=time.sleep):
    """Run ``work`` again while the database is unreachable, with growing pauses, for at most
    ``give_up_after`` seconds; then let the error through (the claim expires, as after a crash)."""
    deadline = time.monotonic() + give_up_after
    pause = 0.5
    while True:
        try:
            return work()
        except OperationalError as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("database error while %s: %s; retrying in %.1fs", what, _one_line(exc), pause)
            sleep(pause)
            pause = min(pause * 2, 10.0)


def _build_message(session: Session, settings, group: list[Alert], *, now: datetime):
    """The message for one group, the recipient's name (for the greeting), and the ids of the
    alerts held back because an item of theirs looks like it holds a CPR number."""
    first = group[0]
    recipient = session.get(Worker, first.recipient_worker_id) if first.recipient_worker_id else None
    name = _shown_name(recipient)
    if AlertKind(first.kind) not in DEADLINE_KINDS or first.deadline_id is None:
        return render.message_from_payload(outbox.payload_of(first)), name, set()
    items = []
    held: set[int] = set()
    team_ids: set[int] = set()
    teams: dict[int, Team | None] = {}
    for alert in group:
        deadline = session.get(Deadline, alert.deadline_id)
        if deadline is None:
            raise LookupError(f"alert {alert.id}: deadline {alert.deadline_id} no longer exists")
        case = session.get(Case, deadline.case_id)
        responsible = (session.get(Worker, deadline.responsible_worker_id)
                       if deadline.responsible_worker_id else None)
        # The caseworker's name helps a leader or substitute; the caseworker knows their own.
        responsible_name = (_shown_name(responsible) if responsible is not None
                            and responsible.id != alert.recipient_worker_id else None)
        if case.team_id not in teams:
            teams[case.team_id] = session.get(Team, case.team_id)
        team_ids.add(case.team_id)
        item = render.AlertItem(
            alert_id=alert.id, kind=AlertKind(alert.kind), stage=alert.stage, duty=deadline.duty,
            regime=deadline.regime, citation=deadline.citation, case_ref=case.ext_id,
            case_link=case_link(case, settings), due=deadline.due, status=deadline.status,
            municipal_policy=deadline.municipal_policy, responsible_name=responsible_name,
            team_name=_shown_name(teams[case.team_id]),
            deadline_id=deadline.id,
        )
        if render.item_sensitive(item):
            held.add(alert.id)
        else:
            items.append(item)
    if not items:
        return None, name, held
    context = message_context(session, settings, recipient=recipient, address=first.recipient_address,
                              channel=Channel(first.channel), team_ids=team_ids, now=now)
    return render.render_alerts(items, recipient_name=name, now=now, context=context), name, held


def _shown_name(row: Worker | Team | None) -> str | None:
    """A worker's or team's name for a message, or None when it looks like it holds a CPR number
    (stored before the intake refused such names): the message goes without the name rather than
    not at all."""
    if row is None:
        return None
    if contains_cpr(row.name):
        log.error("%s (id %s): the name looks like it holds a CPR number; left out of the message",
                  type(row).__name__.lower(), row.id)
        return None
    return row.name


def case_link(case: Case, settings) -> str:
    """The case's own link if the store has one, else the configured template."""
    if case.link:
        return case.link
    return settings.alerts.case_link_template.format(case_ref=quote(case.ext_id, safe=""))


# --- dead letters ---------------------------------------------------------------------------

def _report_dead_letters(session: Session, settings, dead: list[Alert], *, now: datetime) -> int:
    """Tell the operators about alerts that will not be delivered: nothing is dropped silently.

    The operator alert goes through the same outbox (so it is retried and survives a restart).
    An operator alert that dies itself is only logged, or one broken ops channel would feed itself.
    """
    worth_telling = [a for a in dead if AlertKind(a.kind) != AlertKind.OPS]
    for alert in dead:
        log.error("dead letter: alert %s (%s %s, %s) after %d attempts: %s", alert.id, alert.kind,
                  alert.stage, alert.channel, alert.attempts, alert.last_error)
    if not worth_telling or not settings.delivery.ops_urls:
        return 0
    payload = render.message_to_payload(dead_letter_message(worth_telling, now=now))
    # One operator alert per death: the key names the dead alerts and the instant, so an alert
    # that is retried by hand and dies again is reported again.
    ids = "-".join(str(a.id) for a in worth_telling[:10])
    return ops_alerts.enqueue(session, settings, key=f"ops:dead:{ids}", stage="dead_letter", payload=payload,
                              now=now)


def dead_letter_message(dead: list[Alert], *, now: datetime) -> render.Message:
    """The operator's message: which alerts, why, and how to retry. No case data beyond the ids."""
    lines = [f"- alert {a.id}: {a.kind} {a.stage} via {a.channel}, {a.attempts} forsøg: "
             f"{(a.last_error or 'ukendt fejl')[:300]}" for a in dead]
    subject = f"watchdog: {len(dead)} besked(er) kunne ikke leveres"
    text = "\n".join([
        f"{subject} ({format_local(now)}).", "", *lines, "",
        "Ret fejlen, og send dem igen med `watchdog outbox retry`. Se `watchdog outbox list --state dead`.",
    ])
    return render.Message(subject=subject, text=text, html=render.text_to_html(text),
                          card=render.simple_card(subject, text))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


