"""Stage 2, deadlines: the facts of a batch of cases, loaded in bulk for the rules.

I/O: reads the case store (a few queries per batch of cases, never one query per case). Used by
the recompute (``watchdog.recompute``); the rules themselves are pure (``watchdog.rules``).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from sqlalchemy import select
from sqlmodel import Session

from watchdog.typed_rows import typed_rows

__all__ = ["case_filter", "load_case_facts"]


def case_filter(column, case_ids: Sequence[int], whole_range: bool):
    """``column`` among ``case_ids``: an id range when the batch is every case in it (the full
    recompute; one cached statement, an index range scan), else an IN list."""
    if whole_range:
        return column.between(case_ids[0], case_ids[-1])
    return column.in_(case_ids)


def load_case_facts(session: Session, case_ids: Sequence[int], *, whole_range: bool = False):
    """The facts of the given cases, keyed by case id (cases that do not exist are left out).

    ``whole_range``: ``case_ids`` is sorted and the caller wants every case from its first to its
    last id (cases created meanwhile in that range are included).

    Reads through the session's connection (Core rows), not the ORM: for plain column selects
    the ORM's result machinery was a fifth of a national recompute."""
    from watchdog.casestore import (
        Case, FollowUp, Investigation, Measure, Notification, ReassessmentParticipant, SupervisionVisit,
    )
    from watchdog.rules.facts import (
        CaseFacts, FollowUpFacts, InvestigationFacts, MeasureFacts, NotificationFacts, VisitFacts,
    )

    ids = list(case_ids)
    if not ids:
        return {}

    def among(column):
        return case_filter(column, ids, whole_range)
    # Rows are unpacked as tuples and the facts built positionally (in their fields' order):
    # attribute access on rows and keyword construction were a tenth of a national recompute.
    # The rows come from the driver's cursor, typed the cheap way (``watchdog.typed_rows``):
    # SQLAlchemy's result processing (a Row and a TypeDecorator call per instant) cost as much
    # as the database's reading.
    connection = session.connection()

    def rows(query) -> list:
        return typed_rows(connection, query)
    participants: dict[int, set[int]] = {}
    for notification_id, worker_id in rows(
        select(ReassessmentParticipant.notification_id, ReassessmentParticipant.worker_id)
        .join(Notification, Notification.id == ReassessmentParticipant.notification_id)
        .where(among(Notification.case_id))
    ):
        participants.setdefault(notification_id, set()).add(worker_id)
    no_one: frozenset[int] = frozenset()

    notifications: dict[int, list] = {}
    for (case_id, id_, received_at, professional_notifier, assessed_at, assessed_by_id, receipt_confirmed_at,
         child_in_support, reassessed_at) in rows(select(
            Notification.case_id, Notification.id, Notification.received_at, Notification.professional_notifier,
            Notification.assessed_at, Notification.assessed_by_id, Notification.receipt_confirmed_at,
            Notification.child_in_support, Notification.reassessed_at,
         ).where(among(Notification.case_id))):
        found = participants.get(id_)
        notifications.setdefault(case_id, []).append(NotificationFacts(
            id_, received_at, bool(professional_notifier), assessed_at, assessed_by_id, receipt_confirmed_at,
            bool(child_in_support), reassessed_at, frozenset(found) if found else no_one,
        ))

    investigations: dict[int, list] = {}
    for case_id, *fields in rows(select(
        Investigation.case_id, Investigation.id, Investigation.aware_at, Investigation.kind,
        Investigation.completed_at, Investigation.interim_assessed_at, Investigation.notification_id,
    ).where(among(Investigation.case_id))):
        investigations.setdefault(case_id, []).append(InvestigationFacts(*fields))

    follow_ups: dict[int, list] = {}
    for measure_id, *fields in rows(
        select(FollowUp.measure_id, FollowUp.id, FollowUp.performed_at, FollowUp.next_planned_on)
        .join(Measure, Measure.id == FollowUp.measure_id).where(among(Measure.case_id))
    ):
        follow_ups.setdefault(measure_id, []).append(FollowUpFacts(*fields))

    visits: dict[int, list] = {}
    for measure_id, id_, visited_at, child_conversation in rows(
        select(SupervisionVisit.measure_id, SupervisionVisit.id, SupervisionVisit.visited_at,
               SupervisionVisit.child_conversation)
        .join(Measure, Measure.id == SupervisionVisit.measure_id).where(among(Measure.case_id))
    ):
        visits.setdefault(measure_id, []).append(VisitFacts(id_, visited_at, bool(child_conversation)))

    measures: dict[int, list] = {}
    for (case_id, id_, kind, decided_at, legal_basis, effected_at, ended_at, investigation_id,
         child_conversation_at, child_conversation_exemption, plan_at, plan_required) in rows(select(
            Measure.case_id, Measure.id, Measure.kind, Measure.decided_at, Measure.legal_basis,
            Measure.effected_at, Measure.ended_at, Measure.investigation_id, Measure.child_conversation_at,
            Measure.child_conversation_exemption, Measure.plan_at, Measure.plan_required,
         ).where(among(Measure.case_id))):
        measures.setdefault(case_id, []).append(MeasureFacts(
            id_, kind, decided_at, legal_basis or "", effected_at, ended_at, investigation_id,
            child_conversation_at, child_conversation_exemption, plan_at, bool(plan_required),
            tuple(follow_ups.get(id_, ())), tuple(visits.get(id_, ())),
        ))

    facts = {}
    by_receipt = attrgetter("received_at", "id")
    for id_, opened_at, worker_id, birth_date, closed_at, aftercare_decided_at in rows(select(
        Case.id, Case.opened_at, Case.worker_id, Case.birth_date, Case.closed_at, Case.aftercare_decided_at,
    ).where(among(Case.id))):
        facts[id_] = CaseFacts(
            id_, opened_at, worker_id, birth_date, closed_at, aftercare_decided_at,
            tuple(sorted(notifications.get(id_, ()), key=by_receipt)),
            tuple(investigations.get(id_, ())),
            tuple(measures.get(id_, ())),
        )
    return facts
