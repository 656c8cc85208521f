"""The deadline rules' entry point: one case's facts + policy + ``now`` → its deadlines. Pure.

No database, no clock, no network: the caller passes ``now``. Due instants depend only on the
facts and the law; statuses also on ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import attrgetter, itemgetter

from watchdog.clock import ensure_aware
from watchdog.rules.facts import CaseFacts
from watchdog.rules.investigation import investigation_duties
from watchdog.rules.measures import measure_duties
from watchdog.rules.notifications import notification_duties
from watchdog.rules.policy import RulePolicy
from watchdog.rules.status import Instance, key_of, settle, settled_values
from watchdog.rules.types import ComputedDeadline

__all__ = ["RulePolicy", "compute_case_deadlines", "compute_case_rows"]

_by_key = attrgetter("key")
_first = itemgetter(0)


def compute_case_deadlines(facts: CaseFacts, policy: RulePolicy, now: datetime) -> list[ComputedDeadline]:
    """Every duty instance of one case as of ``now``, in a stable order (by key)."""
    now = _utc(now)
    computed = [settle(item, now) for item in _instances(facts, policy)]
    computed.sort(key=_by_key)
    return computed


def compute_case_rows(facts: CaseFacts, policy: RulePolicy, now: datetime) -> list[tuple[str, tuple, Instance]]:
    """What ``compute_case_deadlines`` computes, as ``(key, values, instance)`` in the same order:
    ``values`` as ``rules.status.settled_values`` gives them (``settle(instance, now)`` builds the
    deadline itself). The recompute compares and writes these without a ComputedDeadline per duty."""
    now = _utc(now)
    rows = [(key_of(item), settled_values(item, now), item) for item in _instances(facts, policy)]
    rows.sort(key=_first)
    return rows


def _utc(now: datetime) -> datetime:
    """``now`` in UTC (the recompute passes UTC: no conversion), refused when naive."""
    return now if now.tzinfo is UTC else ensure_aware(now, what="now")


def _instances(facts: CaseFacts, policy: RulePolicy) -> list[Instance]:
    return [*notification_duties(facts, policy), *investigation_duties(facts), *measure_duties(facts, policy)]
