"""The deadline rules' entry point: one case's facts + policy + ``now`` → its deadlines. Pure.

No database, no clock, no network: the caller passes ``now``. Due instants depend only on the
facts and the law; statuses also on ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import attrgetter

from watchdog.clock import ensure_aware
from watchdog.rules.facts import CaseFacts
from watchdog.rules.investigation import investigation_duties
from watchdog.rules.measures import measure_duties
from watchdog.rules.notifications import notification_duties
from watchdog.rules.policy import RulePolicy
from watchdog.rules.status import settle
from watchdog.rules.types import ComputedDeadline

__all__ = ["RulePolicy", "compute_case_deadlines"]

_by_key = attrgetter("key")


def compute_case_deadlines(facts: CaseFacts, policy: RulePolicy, now: datetime) -> list[ComputedDeadline]:
    """Every duty instance of one case as of ``now``, in a stable order (by key)."""
    if now.tzinfo is not UTC:  # the recompute passes UTC; anything else is checked and converted
        now = ensure_aware(now, what="now")
    items = [*notification_duties(facts, policy), *investigation_duties(facts), *measure_duties(facts, policy)]
    computed = [settle(item, now) for item in items]
    computed.sort(key=_by_key)
    return computed
