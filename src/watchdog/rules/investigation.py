"""The four-month investigation (børnefaglig undersøgelse): SEL § 50, stk. 7 / BL § 20, stk. 3. Pure.

The clock starts at the instant the municipality became aware that the child may need special
support; the investigation is due at the end of the local date four calendar months later. Only a
new investigation counts (an update of an earlier one does not: barometer practice).

A foreløbig vurdering made by the due date is a lawful reason ("Nej, men lovlig grund"): once the
due time has passed without completion the status is ``excepted``. The investigation is still
tracked: when it is finally completed it stays ``excepted`` and ``met_at`` records the completion,
so the report can tell "excepted and since finished" from "excepted and still running".
"""

from __future__ import annotations

from collections.abc import Iterator

from watchdog.casestore import InvestigationKind
from watchdog.clock import format_local
from watchdog.rules.calendar import months_after
from watchdog.rules.facts import CaseFacts, InvestigationFacts
from watchdog.rules.status import Instance
from watchdog.rules.types import Duty, SubjectKind


def investigation_4m(case: CaseFacts, inv: InvestigationFacts) -> Instance | None:
    if inv.kind != InvestigationKind.NEW:
        return None
    due = months_after(inv.aware_at, 4)
    reason = None
    note = None
    if inv.interim_assessed_at is not None:
        if inv.completed_at is not None and inv.completed_at <= due:
            pass  # finished in time: the interim assessment does not matter
        elif inv.interim_assessed_at <= due:
            reason = f"foreløbig vurdering {format_local(inv.interim_assessed_at)}"
            note = "interim assessment by the due date; the investigation must be finished snarest"
        else:
            note = "interim assessment after the due date: no lawful reason"
    return Instance(
        duty=Duty.INVESTIGATION_4M, case_id=case.id, subject_kind=SubjectKind.INVESTIGATION,
        subject_id=inv.id, clock_start=inv.aware_at, due=due, met_at=inv.completed_at,
        exception_reason=reason, exception_at=inv.interim_assessed_at, exception_from_due=True,
        ends_at=case.closed_at, ends_because="case closed before the due time",
        responsible_worker_id=case.worker_id, note=note,
    )


def investigation_duties(case: CaseFacts) -> Iterator[Instance]:
    for inv in case.investigations:
        item = investigation_4m(case, inv)
        if item is not None:
            yield item
