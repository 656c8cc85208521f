"""Stage 3, alert planning: which alerts are due now, to whom, on which channel.

Pure: no database, no clock, no network. Input: the deadlines, the routing facts (workers,
absences, teams, which team a case belongs to), the policy (``settings.alerts``), the working-day
calendar, the stages already in the outbox, and ``now``. Output: ``outbox.NewAlert`` rows, each
with its unique key, ready for ``outbox.enqueue`` (which ignores a key it already holds).

The policy, in words (the README's "Alerts" section says the same):

- **Warnings** follow a ladder per duty (``alerts.ladder``): "receipt" = when the clock starts,
  "30d"/"4h" = that long before the due time. A stage is planned once its send time has come.
  Only the most recent stage whose time has come is planned: a deadline first seen after several
  stages have passed (a late registration, a daemon that was down) gets one warning, not a flood.
- **Working hours.** Warnings about duties counted in days, and escalations and reminders about
  them, go out on working days within working hours (Danish public holidays plus Grundlovsdag,
  24 and 31 December are off). A send time on a non-working day moves to the opening of the
  working day before; a time outside working hours moves to that day's opening. A send time that
  would then fall before the clock started (a notification received on a Saturday) moves forward
  to the next working moment instead. The 24-hour assessment is warned at any hour.
- **Escalation** to the team leader(s) once at breach (stage "breach"). A deadline the service
  first computed when it had been breached for more than ``backlog_days`` (go-live, a backfill)
  is not escalated one by one: stage "backlog" instead, which delivery renders as one summary
  per leader and team. After ``second_escalation_days`` (off by default) a breach still open
  goes to the head of unit and ``second_escalation_addresses`` (stage "escalation_2").
- **Reminders** to the caseworker while a breach stays open, on a decaying cadence: days
  ``reminder_days`` after the due time, then every ``reminder_repeat_days`` (stage
  "reminder_<days>d", named by its day so a changed series never repeats a step). Leaders are
  not reminded item by item: they have the escalation, the weekly digest and the web app.
  ``reminder_due`` is the one place that decides it.
- **Closed deadlines** (met, met_late, not_applicable, and excepted ones) get nothing more, with
  one exception: an investigation excepted by a foreløbig vurdering must still be finished
  "snarest herefter" (LEGAL.md). While it is unfinished past its due time, the caseworker gets a
  reminder at the due time and then on the same cadence (stages "snarest_0", "snarest_<days>d");
  the leader is not escalated to, because the exception is lawful.
- **Acknowledged** ("jeg er på sagen", ``RoutingFacts.acknowledged``): until its end, no warning,
  reminder or repeat escalation is planned (``acknowledgements.silences``); the first escalation at
  breach still is. Planning looks again at the end, and what was silenced comes back then.
- **Routing.** The responsible caseworker; while absent, the substitute (if active and not absent
  too), else the team's leaders. Reassessment warnings also go to the configured reviewers
  (``alerts.reviewers``, worker ext_ids): the law wants someone new on the case. 24-hour warnings
  also go to the team's duty address (døgnvagt). Every worker gets email; one with a Teams
  workflow URL gets Teams too.
  The routing itself is ``watchdog.routing``.
"""

from __future__ import annotations

from bisect import bisect_right

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from watchdog import acknowledgements
from watchdog.clock import LOCAL_TZ, ensure_aware, to_local
from watchdog.durations import parse_offset
from watchdog.outbox import AlertKind, NewAlert
from watchdog.routing import (  # noqa: F401 - RoutingFacts and _Target are part of planning's API
    Router, RoutingFacts, _Target, alerts_for,
)
from watchdog.rules.types import Duty, Status

log = logging.getLogger(__name__)

# Duties warned at any hour: their due time is counted in elapsed hours, nights included.
ANY_HOUR_DUTIES = frozenset({Duty.ASSESSMENT_24H})

_CLOSED = frozenset({Status.MET, Status.MET_LATE, Status.NOT_APPLICABLE})

SECOND_ESCALATION_STAGE = "escalation_2"
BACKLOG_STAGE = "backlog"
SECOND_BACKLOG_STAGE = "backlog_2"


class DeadlineLike(Protocol):
    id: int | None
    duty: Duty
    case_id: int
    status: Status
    clock_start: datetime
    due: datetime
    met_at: datetime | None
    responsible_worker_id: int | None
    first_seen_at: datetime | None


@dataclass
class Plan:
    """What planning decided at ``now``: the alerts to enqueue, and for every deadline it looked
    at, when planning next needs to look at it again (``next_at``; None = never, unless the
    deadline changes). A stage due now that had nobody to go to keeps its deadline due (its
    ``next_at`` is ``now``), so it is tried again on the next poll."""

    alerts: list[NewAlert]
    next_at: dict[int, datetime | None]


def plan_alerts(deadlines: Iterable[DeadlineLike], facts: RoutingFacts, policy, *, now: datetime,
                is_working_day: Callable[[date], bool]) -> list[NewAlert]:
    """The alerts due at ``now`` that are not yet in the outbox (by deadline and stage).

    ``policy`` is ``settings.alerts``; ``is_working_day`` says whether a Danish calendar date is a
    working day for warning delivery.
    """
    return plan(deadlines, facts, policy, now=now, is_working_day=is_working_day).alerts


def plan(deadlines: Iterable[DeadlineLike], facts: RoutingFacts, policy, *, now: datetime,
         is_working_day: Callable[[date], bool]) -> Plan:
    """``plan_alerts``, and when each deadline next needs planning (see ``Plan``)."""
    now = ensure_aware(now, what="now")
    hours = _Hours(policy.working_hours_start, policy.working_hours_end, is_working_day)
    router = Router(facts, policy, today=to_local(now).date())
    planned: list[NewAlert] = []
    next_at: dict[int, datetime | None] = {}
    for deadline in deadlines:
        if deadline.id is None:
            continue
        stuck = False
        until = facts.acknowledged.get(deadline.id)
        for kind, stage, send_at, targets in _stages_due(deadline, policy, hours, router, now):
            if (deadline.id, stage) in facts.planned:
                continue
            if acknowledgements.silences(kind, stage, until=until, now=now):
                continue
            if not targets:
                log.warning("deadline %s (%s): nobody to send stage %s to (no caseworker, no leader)",
                            deadline.id, deadline.duty, stage)
                stuck = True
                continue
            planned.extend(alerts_for(deadline.id, kind, stage, send_at, targets))
        next_at[deadline.id] = now if stuck else acknowledgements.next_look(
            _next_stage_time(deadline, policy, hours, now), until=until, now=now)
    planned.sort(key=lambda a: (a.send_after, a.key))
    return Plan(planned, next_at)


def next_planning_time(deadline: DeadlineLike, policy, *, now: datetime,
                       is_working_day: Callable[[date], bool]) -> datetime | None:
    """The first instant after ``now`` at which planning this deadline (as it stands) could
    yield a stage it does not yield at ``now``; None if it never will. Until then, planning it
    again can only repeat what is already in the outbox, so the poll may leave it alone."""
    hours = _Hours(policy.working_hours_start, policy.working_hours_end, is_working_day)
    return _next_stage_time(deadline, policy, hours, ensure_aware(now, what="now"))


def _next_stage_time(deadline: DeadlineLike, policy, hours: _Hours, now: datetime) -> datetime | None:
    # Mirrors _stages_due: every stage it can yield, the earliest send time after ``now``.
    status = Status(deadline.status)
    if status in _CLOSED:
        return None
    due = ensure_aware(deadline.due)
    duty = Duty(deadline.duty)
    any_hour = duty in ANY_HOUR_DUTIES
    candidates: list[datetime | None] = []
    if status == Status.EXCEPTED:
        if duty == Duty.INVESTIGATION_4M and deadline.met_at is None:
            candidates.append(reminder_due(deadline, policy, hours, now, snarest=True).next_at)
    else:  # open or breached
        if status == Status.OPEN and now < due:
            candidates += [t for _name, t in _ladder(deadline, policy, hours, any_hour) if t > now]
        escalation = _escalation(deadline, policy, hours, any_hour)
        if escalation is not None and escalation[1] > now:
            candidates.append(escalation[1])
        second = _second_escalation_time(deadline, policy, hours, any_hour)
        if second is not None and second > now:
            candidates.append(second)
        candidates.append(reminder_due(deadline, policy, hours, now).next_at)
    found = [t for t in candidates if t is not None]
    return min(found) if found else None


@dataclass(frozen=True)
class Reminder:
    """``reminder_due``'s answer: the latest reminder step whose time has come (its stage and
    send time, or None) and the send time of the next step after ``now`` (None: no more)."""

    stage: str | None
    send_at: datetime | None
    next_at: datetime | None


def reminder_offsets(policy, around_day: int) -> list[int]:
    """The reminder steps (whole days after the due time) that can matter ``around_day`` days
    after it: the configured series, then every ``reminder_repeat_days`` after its last day."""
    series = list(policy.reminder_days)
    repeat = policy.reminder_repeat_days
    if not repeat:
        return series
    base = series[-1] if series else 0
    # Working hours move a step by at most a long weekend or a holiday run, so the steps from
    # ten repeats back to two ahead of ``around_day`` hold the latest passed and the next one.
    k = max(1, (around_day - base) // repeat)
    return series + [base + j * repeat for j in range(max(1, k - 10), k + 3)]


def reminder_due(deadline: DeadlineLike, policy, hours: _Hours, now: datetime, *,
                 snarest: bool = False) -> Reminder:
    """The reminder decision for an open breach (or, ``snarest``, an excepted investigation that
    is still unfinished past its due time): which step is due at ``now`` and when the next one
    is. Every reminder about a deadline is decided here and nowhere else."""
    due = ensure_aware(deadline.due)
    any_hour = Duty(deadline.duty) in ANY_HOUR_DUTIES
    prefix = "snarest" if snarest else "reminder"
    days = reminder_offsets(policy, max(0, (now - due).days))
    if snarest:
        days = [None, *days]  # finish it "snarest": said at the due time itself ("snarest_0")

    def send_at(i: int) -> datetime:
        nominal = due if days[i] is None else due + timedelta(days=days[i])
        return nominal if any_hour else hours.next_working_moment(nominal)

    # The steps are increasing (reminder_days is validated so) and moving an instant into working
    # hours keeps their order, so their send times are too: the latest step due by ``now`` and the
    # next one sit on either side of one cut, found by bisection (planning everything at go-live
    # asked ~11 steps of every open breach).
    cut = bisect_right(range(len(days)), now, key=send_at)
    stage = None if cut == 0 else "snarest_0" if days[cut - 1] is None else f"{prefix}_{days[cut - 1]}d"
    return Reminder(stage, send_at(cut - 1) if cut else None, send_at(cut) if cut < len(days) else None)


def is_backlog(deadline: DeadlineLike, policy) -> bool:
    """Whether the service first computed this deadline when it had long been breached: more
    than ``backlog_days`` before that first computation (go-live, a backfill of old cases)."""
    first_seen = getattr(deadline, "first_seen_at", None)
    if first_seen is None:
        return False
    return ensure_aware(deadline.due) < ensure_aware(first_seen) - timedelta(days=policy.backlog_days)


def _escalation(deadline: DeadlineLike, policy, hours: _Hours, any_hour: bool) -> tuple[str, datetime] | None:
    """The first escalation step to the team leaders: at the breach ("breach"), or for a backlog
    deadline when it was first seen ("backlog", delivered as one summary per leader)."""
    if not policy.escalate_on_breach:
        return None
    if is_backlog(deadline, policy):
        seen = ensure_aware(deadline.first_seen_at)
        return "backlog", hours.next_working_moment(seen)
    due = ensure_aware(deadline.due)
    return "breach", due if any_hour else hours.next_working_moment(due)


def _second_escalation_time(deadline: DeadlineLike, policy, hours: _Hours, any_hour: bool) -> datetime | None:
    if policy.second_escalation_days is None:
        return None
    nominal = ensure_aware(deadline.due) + timedelta(days=policy.second_escalation_days)
    return nominal if any_hour else hours.next_working_moment(nominal)


def _stages_due(deadline: DeadlineLike, policy, hours: _Hours, router: Router, now: datetime):
    """The (kind, stage, send time, targets) of this deadline to plan now: at most one per kind."""
    status = Status(deadline.status)
    due = ensure_aware(deadline.due)
    any_hour = Duty(deadline.duty) in ANY_HOUR_DUTIES
    if status in _CLOSED:
        return
    if status == Status.OPEN and now < due:
        latest = _latest_warning(deadline, policy, hours, now, any_hour)
        if latest is not None:
            stage, send_at = latest
            yield AlertKind.WARNING, stage, send_at, router.warning_targets(deadline)
        return
    if status == Status.EXCEPTED:
        if Duty(deadline.duty) == Duty.INVESTIGATION_4M and deadline.met_at is None:
            reminder = reminder_due(deadline, policy, hours, now, snarest=True)
            if reminder.stage is not None:
                yield AlertKind.REMINDER, reminder.stage, reminder.send_at, router.caseworker_targets(deadline)
        return
    if status == Status.BREACHED or (status == Status.OPEN and now >= due):
        # An open deadline past its due time is breached; the poll will store that, but the
        # leader need not wait for it.
        escalation = _escalation(deadline, policy, hours, any_hour)
        if escalation is not None and escalation[1] <= now:
            yield AlertKind.ESCALATION, escalation[0], escalation[1], router.leader_targets(deadline)
        second = _second_escalation_time(deadline, policy, hours, any_hour)
        if second is not None and second <= now:
            # A backlog breach reaches the head of unit counted in a summary too, not as an item.
            stage = SECOND_BACKLOG_STAGE if is_backlog(deadline, policy) else SECOND_ESCALATION_STAGE
            yield AlertKind.ESCALATION, stage, second, router.second_level_targets()
        reminder = reminder_due(deadline, policy, hours, now)
        if reminder.stage is not None:
            yield AlertKind.REMINDER, reminder.stage, reminder.send_at, router.caseworker_targets(deadline)


def ladder_stages(deadline: DeadlineLike, policy, *,
                  is_working_day: Callable[[date], bool]) -> list[tuple[str, datetime]]:
    """Every warning stage of a deadline with its send time, earliest first."""
    hours = _Hours(policy.working_hours_start, policy.working_hours_end, is_working_day)
    return _ladder(deadline, policy, hours, Duty(deadline.duty) in ANY_HOUR_DUTIES)


def _ladder(deadline, policy, hours: _Hours, any_hour: bool) -> list[tuple[str, datetime]]:
    duty = Duty(deadline.duty)
    due = ensure_aware(deadline.due)
    start = ensure_aware(deadline.clock_start)
    stages: dict[str, datetime] = {}
    for item in getattr(policy.ladder, duty.value, []):
        offset = parse_offset(item)
        name = "at_receipt" if offset is None else f"before_{item.strip().lower()}"
        nominal = start if offset is None else due - offset
        if any_hour:
            send_at = max(nominal, start)
        else:
            send_at = hours.warning_time(nominal, not_before=start)
        if send_at >= due:
            continue  # a warning after the due time is not a warning
        stages[name] = send_at
    return sorted(stages.items(), key=lambda kv: (kv[1], kv[0]))


def _latest_warning(deadline, policy, hours, now, any_hour) -> tuple[str, datetime] | None:
    passed = [(name, t) for name, t in _ladder(deadline, policy, hours, any_hour) if t <= now]
    return passed[-1] if passed else None


class _Hours:
    """Working hours on working days, in Europe/Copenhagen."""

    def __init__(self, start_hour: int, end_hour: int, is_working_day: Callable[[date], bool]):
        self.start_hour = start_hour
        self.end_hour = end_hour
        self._is_working_day = is_working_day
        # Per planning round: planning everything (go-live, a changed policy) asks about the same
        # few hundred days hundreds of thousands of times.
        self._working: dict[date, bool] = {}
        self._openings: dict[date, datetime] = {}

    def is_working_day(self, day: date) -> bool:
        found = self._working.get(day)
        if found is None:
            found = self._working[day] = bool(self._is_working_day(day))
        return found

    def opening(self, day: date) -> datetime:
        found = self._openings.get(day)
        if found is None:
            found = self._openings[day] = datetime.combine(day, time(self.start_hour), tzinfo=LOCAL_TZ).astimezone(UTC)
        return found

    def _shift(self, day: date, step: int) -> date:
        for _ in range(60):  # no Danish calendar has 60 days off in a row
            day += timedelta(days=step)
            if self.is_working_day(day):
                return day
        raise ValueError(f"no working day within 60 days of {day}")

    def warning_time(self, nominal: datetime, *, not_before: datetime) -> datetime:
        """When a warning nominally due at ``nominal`` goes out: in working hours, never later
        in the calendar than the nominal day, and never before the clock started."""
        local = to_local(nominal)
        day = local.date()
        if not self.is_working_day(day):
            send_at = self.opening(self._shift(day, -1))
        elif local.hour < self.start_hour or local.hour >= self.end_hour:
            send_at = self.opening(day)
        else:
            send_at = ensure_aware(nominal)
        if send_at < not_before:
            send_at = self.next_working_moment(not_before)
        return send_at

    def next_working_moment(self, instant: datetime) -> datetime:
        """``instant`` itself if it is within working hours, else the next opening."""
        local = to_local(instant)
        day = local.date()
        if self.is_working_day(day):
            if self.start_hour <= local.hour < self.end_hour:
                return ensure_aware(instant)
            if local.hour < self.start_hour:
                return self.opening(day)
        return self.opening(self._shift(day, +1))

