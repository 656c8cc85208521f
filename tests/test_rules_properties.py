"""Properties of the deadline rules over generated cases (hypothesis). No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.casestore import InvestigationKind, MeasureKind
from watchdog.rules.engine import RulePolicy, compute_case_deadlines, compute_case_rows
from watchdog.rules.facts import (
    CaseFacts, FollowUpFacts, InvestigationFacts, MeasureFacts, NotificationFacts, VisitFacts,
)
from watchdog.rules.status import STATUS_RANK
from watchdog.rules.types import ComputedDeadline, Status

POLICY = RulePolicy()
START = datetime(2022, 6, 1, tzinfo=UTC)
SPAN_MINUTES = 4 * 365 * 24 * 60  # mid-2022 to mid-2026: both regimes, DST changes, leap day

instants = st.integers(0, SPAN_MINUTES).map(lambda m: START + timedelta(minutes=m))
maybe = lambda strategy: st.none() | strategy  # noqa: E731
later = lambda base: st.integers(0, 300 * 24 * 60).map(lambda m: base + timedelta(minutes=m))  # noqa: E731
workers = st.integers(1, 4)


@st.composite
def notifications(draw, nid):
    received = draw(instants)
    return NotificationFacts(
        id=nid, received_at=received, professional_notifier=draw(st.booleans()),
        assessed_at=draw(maybe(later(received))), assessed_by_id=draw(maybe(workers)),
        receipt_confirmed_at=draw(maybe(later(received))), child_in_support=draw(st.booleans()),
        reassessed_at=draw(maybe(later(received))),
        reassessment_participant_ids=frozenset(draw(st.sets(workers, max_size=2))),
    )


@st.composite
def investigations(draw, iid):
    aware = draw(instants)
    return InvestigationFacts(
        id=iid, aware_at=aware, kind=draw(st.sampled_from(InvestigationKind)),
        completed_at=draw(maybe(later(aware))), interim_assessed_at=draw(maybe(later(aware))),
    )


@st.composite
def measures(draw, mid):
    decided = draw(instants)
    effected = draw(maybe(later(decided)))
    follow_ups, visits = [], []
    if effected is not None:
        at = effected
        for i in range(draw(st.integers(0, 3))):
            at = draw(later(at))
            follow_ups.append(FollowUpFacts(id=mid * 10 + i, performed_at=at,
                                            next_planned_on=draw(maybe(later(at).map(lambda x: x.date())))))
        at = effected
        for i in range(draw(st.integers(0, 3))):
            at = draw(later(at))
            visits.append(VisitFacts(id=mid * 10 + i, visited_at=at, child_conversation=draw(st.booleans())))
    return MeasureFacts(
        id=mid, kind=draw(st.sampled_from(MeasureKind)), decided_at=decided, effected_at=effected,
        ended_at=draw(maybe(later(decided))), investigation_id=draw(maybe(st.just(1))),
        child_conversation_at=draw(maybe(instants)),
        child_conversation_exemption=draw(st.none() | st.just("barnet er for ungt")),
        plan_at=draw(maybe(later(decided))), plan_required=draw(st.booleans()),
        follow_ups=tuple(follow_ups), visits=tuple(visits),
    )


@st.composite
def cases(draw):
    n = draw(st.integers(0, 2))
    return CaseFacts(
        id=1, opened_at=START, worker_id=draw(maybe(workers)),
        birth_date=draw(maybe(st.dates(date(2004, 1, 1), date(2012, 12, 31)))),
        closed_at=draw(maybe(instants)), aftercare_decided_at=draw(maybe(instants)),
        notifications=tuple(draw(notifications(i + 1)) for i in range(n)),
        investigations=tuple(draw(investigations(i + 1)) for i in range(draw(st.integers(0, 2)))),
        measures=tuple(draw(measures(i + 1)) for i in range(draw(st.integers(0, 2)))),
    )


@settings(max_examples=100, deadline=None)
@given(cases(), instants, instants)
def test_a_due_instant_never_depends_on_now(facts, now1, now2):
    first = {d.key: (d.clock_start, d.due, d.regime, d.citation)
             for d in compute_case_deadlines(facts, POLICY, now1)}
    second = {d.key: (d.clock_start, d.due, d.regime, d.citation)
              for d in compute_case_deadlines(facts, POLICY, now2)}
    assert first == second


@settings(max_examples=100, deadline=None)
@given(cases(), instants)
def test_met_before_due_is_met_and_after_due_is_met_late(facts, now):
    for d in compute_case_deadlines(facts, POLICY, now):
        if d.status in (Status.MET, Status.MET_LATE):
            assert d.met_at is not None and d.met_at <= now
            assert d.status == (Status.MET if d.met_at <= d.due else Status.MET_LATE)
        elif d.status in (Status.OPEN, Status.BREACHED):
            assert d.met_at is None
            assert d.status == (Status.BREACHED if now >= d.due else Status.OPEN)
        elif d.status == Status.EXCEPTED:
            assert d.exception_reason
            assert d.met_at is None or d.met_at > d.due


@settings(max_examples=100, deadline=None)
@given(cases(), st.lists(instants, min_size=2, max_size=5))
def test_the_status_only_moves_forward_as_now_grows(facts, nows):
    history: dict[str, list[Status]] = {}
    for now in sorted(nows):
        for d in compute_case_deadlines(facts, POLICY, now):
            history.setdefault(d.key, []).append(d.status)
    for key, statuses in history.items():
        ranks = [STATUS_RANK[s] for s in statuses]
        assert ranks == sorted(ranks), (key, statuses)
        for before, after in zip(statuses, statuses[1:]):
            if before in (Status.MET, Status.MET_LATE, Status.NOT_APPLICABLE, Status.EXCEPTED):
                assert after == before, (key, statuses)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, SPAN_MINUTES), st.integers(-3000, 3000))
def test_a_24_hour_assessment_is_met_exactly_when_done_within_24_elapsed_hours(start, offset_minutes):
    received = START + timedelta(minutes=start)
    assessed = received + timedelta(hours=24, minutes=offset_minutes)
    facts = CaseFacts(id=1, opened_at=START, notifications=(
        NotificationFacts(id=1, received_at=received, assessed_at=assessed),))
    [d] = compute_case_deadlines(facts, POLICY, assessed + timedelta(days=1))
    assert d.status == (Status.MET if offset_minutes <= 0 else Status.MET_LATE)


@settings(max_examples=100, deadline=None)
@given(cases(), instants)
def test_the_recomputes_rows_are_the_computed_deadlines_value_for_value(facts, now):
    """``compute_case_rows`` (what the recompute compares and writes) is ``compute_case_deadlines``
    without the objects: the same keys in the same order, each deadline's fields and its instance."""
    from dataclasses import fields

    deadlines = compute_case_deadlines(facts, POLICY, now)
    rows = compute_case_rows(facts, POLICY, now)
    assert [key for key, _values, _item in rows] == [d.key for d in deadlines]
    stored = [f.name for f in fields(ComputedDeadline) if f.name not in ("origin", "key")]
    for (_key, values, item), d in zip(rows, deadlines):
        assert values == tuple(getattr(d, name) for name in stored)
        assert item == d.origin and ComputedDeadline(*values, item) == d
