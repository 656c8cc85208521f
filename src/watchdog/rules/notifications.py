"""Duties that start with an underretning: the 24-hour assessment, the reassessment by another
worker (genvurdering) and the receipt confirmation to a professional notifier. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from watchdog.casestore import MeasureKind
from watchdog.clock import end_of_local_day, format_local, local_date
from watchdog.rules.calendar import add_hours, hverdage_after
from watchdog.rules.facts import CaseFacts, NotificationFacts
from watchdog.rules.policy import RulePolicy
from watchdog.rules.status import Instance
from watchdog.rules.types import Duty, SubjectKind

CASE_CLOSED = "case closed before the due time"

#: The measures that bring a new underretning under BL § 137 / SEL § 155 a: support under BL § 32
#: / SEL § 52, a placement (BL §§ 46, 47), a youth-crime measure.
REASSESSMENT_MEASURES = (MeasureKind.SUPPORT, MeasureKind.PLACEMENT_CONSENT, MeasureKind.PLACEMENT_NO_CONSENT,
                         MeasureKind.YOUTH_CRIME)


def running_measure(case: CaseFacts, n: NotificationFacts):
    """The earliest-effected measure of the case that, at the notification's receipt, was effected
    and not ended and brings it under the reassessment duty; None if there is none."""
    running = [m for m in case.measures
               if m.kind in REASSESSMENT_MEASURES and m.effected_at is not None and m.effected_at <= n.received_at
               and (m.ended_at is None or m.ended_at > n.received_at)]
    return min(running, key=lambda m: (m.effected_at, m.id)) if running else None


def reassessment_trigger(case: CaseFacts, n: NotificationFacts) -> str | None:
    """Why the reassessment duty arises for ``n`` (None: it does not). LEGAL.md: the child receives
    support, is placed or has a youth-crime measure at the receipt; taken from the store's measures
    (effected and not ended at the receipt) as well as from the notification's flag, since a case
    system's export may not carry the flag. A measure wins over a flag that says no."""
    measure = running_measure(case, n)
    if measure is not None:
        basis = f", {measure.legal_basis}" if measure.legal_basis else ""
        return (f"duty arises from measure {measure.id} ({measure.kind.value}{basis}) effected "
                f"{format_local(measure.effected_at)} and not ended at the receipt")
    if n.child_in_support:
        return "duty arises from the notification: child already in support or placed (child_in_support)"
    return None


def assessment_24h(case: CaseFacts, n: NotificationFacts) -> Instance:
    """SEL § 155, stk. 2 / BL § 136: assess within 24 elapsed hours of receipt (nights count)."""
    return Instance(
        duty=Duty.ASSESSMENT_24H, case_id=case.id, subject_kind=SubjectKind.NOTIFICATION,
        subject_id=n.id, clock_start=n.received_at, due=add_hours(n.received_at, 24),
        met_at=n.assessed_at, ends_at=case.closed_at, ends_because=CASE_CLOSED,
        responsible_worker_id=case.worker_id,
    )


def receipt_confirmation(case: CaseFacts, n: NotificationFacts) -> Instance | None:
    """SEL § 155 b, stk. 1 / BL § 138: confirm receipt to a professional notifier within 6 hverdage."""
    if not n.professional_notifier:
        return None
    return Instance(
        duty=Duty.RECEIPT_CONFIRMATION, case_id=case.id, subject_kind=SubjectKind.NOTIFICATION,
        subject_id=n.id, clock_start=n.received_at, due=hverdage_after(n.received_at, 6),
        met_at=n.receipt_confirmed_at, responsible_worker_id=case.worker_id,
    )


def reassessment(case: CaseFacts, n: NotificationFacts, policy: RulePolicy) -> Instance | None:
    """SEL § 155 a, stk. 1 / BL § 137, stk. 1: a notification about a child who already receives
    support or is placed must be reassessed with someone who has not worked on the case before.

    The statute sets no time limit: the due time is municipal policy (receipt date + N days, end
    of that local day), marked ``municipal_policy``. It is met only when at least one participant
    is neither the responsible caseworker nor whoever assessed an earlier notification in the case.
    The duty arises as ``reassessment_trigger`` says, and the deadline's note names the reason.
    """
    trigger = reassessment_trigger(case, n)
    if trigger is None:
        return None
    earlier_assessors = {
        other.assessed_by_id for other in case.notifications
        if other.id != n.id and other.received_at < n.received_at and other.assessed_by_id is not None
    }
    excluded = earlier_assessors | ({case.worker_id} if case.worker_id is not None else set())
    independent = n.reassessment_participant_ids - excluded
    met_at = None
    note = None
    if n.reassessed_at is not None:
        if independent:
            met_at = n.reassessed_at
        elif not n.reassessment_participant_ids:
            note = "reassessment recorded without participants: another worker must take part"
        else:
            note = ("reassessment only by the responsible caseworker or earlier assessors: "
                    "someone who has not worked on the case must take part")
    due = end_of_local_day(local_date(n.received_at) + timedelta(days=policy.reassessment_days))
    note = trigger if note is None else f"{trigger}; {note}"
    return Instance(
        duty=Duty.REASSESSMENT, case_id=case.id, subject_kind=SubjectKind.NOTIFICATION,
        subject_id=n.id, clock_start=n.received_at, due=due, met_at=met_at,
        ends_at=case.closed_at, ends_because=CASE_CLOSED, responsible_worker_id=case.worker_id,
        municipal_policy=True, note=note,
    )


def notification_duties(case: CaseFacts, policy: RulePolicy) -> Iterator[Instance]:
    for n in case.notifications:
        yield assessment_24h(case, n)
        for item in (reassessment(case, n, policy), receipt_confirmation(case, n)):
            if item is not None:
                yield item
