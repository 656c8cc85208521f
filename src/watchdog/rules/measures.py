"""Duties that follow a decision on a measure: the child conversation before the decision, the
plan, the follow-ups and the supervision visits of a placed child. Pure.

Recurring duties (follow-ups, visits) are produced as a chain: instance ``seq`` k+1 starts when
instance k was met, so the series runs up to and including the next unmet instance, never further.
Structure and due times come from the facts alone; whether an instance is met comes from facts
dated at or before ``now`` (``status.settle``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from watchdog.casestore import MeasureKind
from watchdog.clock import end_of_local_day, local_date, local_midnight
from watchdog.rules.calendar import add_months_to_date, end_of_date, months_after, regime_for
from watchdog.rules.facts import CaseFacts, MeasureFacts
from watchdog.rules.policy import RulePolicy
from watchdog.rules.status import Instance
from watchdog.rules.types import Duty, Regime, SubjectKind

MEASURE_ENDED = "measure ended or case closed before the due time"
# LEGAL.md: the ungeplan (BL § 108) replaces barnets plan for a young person from this age.
UNGEPLAN_AGE = 16
# Measures whose kind is unknown to the rules get no follow-up or plan duty.
_SPECIAL_SUPPORT = (MeasureKind.SUPPORT, MeasureKind.PLACEMENT_CONSENT,
                    MeasureKind.PLACEMENT_NO_CONSENT, MeasureKind.YOUTH_CRIME)


def earliest(*instants: datetime | None) -> datetime | None:
    present = [i for i in instants if i is not None]
    return min(present) if present else None


def _base(case: CaseFacts, m: MeasureFacts, duty: Duty) -> dict:
    return dict(duty=duty, case_id=case.id, subject_kind=SubjectKind.MEASURE, subject_id=m.id,
                ends_at=earliest(m.ended_at, case.closed_at), ends_because=MEASURE_ENDED,
                responsible_worker_id=case.worker_id)


def child_conversation(case: CaseFacts, m: MeasureFacts) -> Instance:
    """SEL § 48 / BL § 5, stk. 3-4: talk with the child before the decision, unless an exemption
    (age/maturity, "helt særlige tilfælde") is recorded. A child's refusal counts as held."""
    exemption = m.child_conversation_exemption
    # The exemption is judged at the decision: a conversation held before it still counts as met.
    return Instance(
        **_base(case, m, Duty.CHILD_CONVERSATION), clock_start=m.decided_at, due=m.decided_at,
        met_at=m.child_conversation_at, exception_reason=exemption, exception_from_due=True,
        note=f"exemption recorded: {exemption}" if exemption else None,
    )


def age_on(birth: date, day: date) -> int:
    """Whole years of age on ``day`` (a 29 February birthday is reached on 1 March)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def plan(case: CaseFacts, m: MeasureFacts) -> Instance | None:
    """SEL § 140, stk. 1: a handleplan before the decision, or within 4 months if the matter
    could not wait (the due time is the 4-month limit). BL § 91: barnets plan before the decision
    on a placement without consent (§ 47), within 3 months of a placement with consent (§ 46)
    or of § 32 support when the decision says a plan is needed; BL § 108: an ungeplan within 3
    months for a young person (age per ``UNGEPLAN_AGE``)."""
    if m.kind not in _SPECIAL_SUPPORT:
        return None
    base = _base(case, m, Duty.PLAN)
    if regime_for(m.decided_at) == Regime.SEL:
        return Instance(**base, clock_start=m.decided_at, due=months_after(m.decided_at, 4),
                        met_at=m.plan_at, note="handleplan")
    if not m.plan_required and not m.kind.is_placement:
        return None
    young = case.birth_date is not None and age_on(case.birth_date, local_date(m.decided_at)) >= UNGEPLAN_AGE
    if young:
        return Instance(**base, clock_start=m.decided_at, due=months_after(m.decided_at, 3),
                        met_at=m.plan_at, variant="ungeplan", note="ungeplan")
    if m.kind == MeasureKind.PLACEMENT_NO_CONSENT:
        due = m.decided_at
    else:
        due = months_after(m.decided_at, 3)
    return Instance(**base, clock_start=m.decided_at, due=due, met_at=m.plan_at, note="barnets plan")


def follow_ups(case: CaseFacts, m: MeasureFacts, policy: RulePolicy) -> Iterator[Instance]:
    """SEL § 70, stk. 1: 3 months after the measure was effected, then at least every 6 months.
    BL § 95, stk. 2: the earlier of 3 months after effect and the completion of an investigation
    run alongside; later ones (§ 95, stk. 3) at the date decided at the previous follow-up."""
    if m.effected_at is None or m.kind not in _SPECIAL_SUPPORT:
        return
    base = _base(case, m, Duty.FOLLOW_UP)
    done = sorted(m.follow_ups, key=lambda f: (f.performed_at, f.id))
    start = m.effected_at
    due = months_after(start, 3)
    note: str | None = None
    variant: str | None = None
    policy_due = False
    if regime_for(start) == Regime.BL and m.investigation_id is not None:
        inv = case.investigation(m.investigation_id)
        if inv is not None and inv.completed_at is not None and inv.completed_at >= start:
            at_completion = end_of_date(inv.completed_at)
            if at_completion < due:
                due = at_completion
                note = "due at the completion of the investigation run alongside"
    seq = 0
    while True:
        met = done[seq] if seq < len(done) else None
        yield Instance(**base, seq=seq, clock_start=start, due=due,
                       met_at=met.performed_at if met else None, variant=variant,
                       municipal_policy=policy_due, note=note)
        if met is None or (base["ends_at"] is not None and met.performed_at >= base["ends_at"]):
            return
        seq += 1
        start = met.performed_at
        note, variant, policy_due = None, None, False
        if regime_for(start) == Regime.SEL:
            due = months_after(start, 6)
        elif met.next_planned_on is not None:
            due = end_of_local_day(met.next_planned_on)
            variant = "later"
        else:
            due = months_after(start, policy.bl_follow_up_fallback_months)
            variant, policy_due = "later", True
            note = ("no next follow-up date recorded at the previous follow-up: "
                    f"{policy.bl_follow_up_fallback_months} months assumed (municipal policy)")


def supervision_visits(case: CaseFacts, m: MeasureFacts) -> Iterator[Instance]:
    """SEL § 148 / BL § 156, stk. 5: at least two supervision visits a year with a conversation
    with the placed child. Counted as a chain: each visit is due at the latest 6 months after the
    placement was effected or after the previous visit with a conversation."""
    if m.effected_at is None or not m.kind.is_placement:
        return
    base = _base(case, m, Duty.SUPERVISION_VISIT)
    done = sorted((v for v in m.visits if v.child_conversation), key=lambda v: (v.visited_at, v.id))
    start = m.effected_at
    seq = 0
    while True:
        met = done[seq] if seq < len(done) else None
        yield Instance(**base, seq=seq, clock_start=start, due=months_after(start, 6),
                       met_at=met.visited_at if met else None)
        if met is None or (base["ends_at"] is not None and met.visited_at >= base["ends_at"]):
            return
        seq += 1
        start = met.visited_at


def aftercare_decision(case: CaseFacts) -> Instance | None:
    """SEL § 68, stk. 11 / BL § 111, stk. 1: decide on support after 18 at least 6 months before
    the 18th birthday ends a placement. Due at the end of the date 6 months before the birthday;
    the clock starts at the 17th birthday (or at the placement, if later): that instant chooses
    the regime."""
    if case.birth_date is None or not any(m.kind.is_placement and m.effected_at is not None
                                          for m in case.measures):
        return None  # the common case, decided before any date arithmetic
    eighteen = add_months_to_date(case.birth_date, 18 * 12)
    due = end_of_local_day(add_months_to_date(eighteen, -6))
    seventeen = local_midnight(add_months_to_date(case.birth_date, 17 * 12))
    placements = [m for m in case.measures
                  if m.kind.is_placement and m.effected_at is not None and m.effected_at < due
                  and (m.ended_at is None or m.ended_at > seventeen)]
    if not placements:
        return None
    clock_start = max(seventeen, min(m.effected_at for m in placements))
    ended = [m.ended_at for m in placements]
    ends_at = earliest(None if None in ended else max(ended), case.closed_at)
    return Instance(
        duty=Duty.AFTERCARE_DECISION, case_id=case.id, subject_kind=SubjectKind.CASE,
        subject_id=case.id, clock_start=clock_start, due=due, met_at=case.aftercare_decided_at,
        ends_at=ends_at, ends_because="placement ended or case closed before the due time",
        responsible_worker_id=case.worker_id,
    )


def measure_duties(case: CaseFacts, policy: RulePolicy) -> Iterator[Instance]:
    for m in case.measures:
        yield child_conversation(case, m)
        item = plan(case, m)
        if item is not None:
            yield item
        yield from follow_ups(case, m, policy)
        yield from supervision_visits(case, m)
    item = aftercare_decision(case)
    if item is not None:
        yield item
