"""The outbox's outcomes: a send's result recorded on its alerts, only under the claim they were
claimed with (the fencing token); a stale holder's result is logged and dropped, its attempt kept.

I/O: the database only; never commits (the caller's transaction holds the outcome, one per sent
message: DESIGN invariant 3). Import these through ``watchdog.outbox``, which re-exports them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, func, tuple_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from watchdog.outbox import _ENQUEUE_CHUNK, _STALE, Alert, AlertState, DeliveryAttempt, _clip, backoff

log = logging.getLogger("watchdog.outbox")


def _held(alert: Alert):
    """The row is still under the claim ``alert`` was claimed with (the fencing check)."""
    return and_(Alert.id == alert.id, Alert.state == AlertState.CLAIMED, Alert.claim_token == alert.claim_token)


def _apply_if_held(session: Session, alert: Alert, values: dict, *, worker_name: str, what: str) -> bool:
    """UPDATE the alert with ``values`` only while ``alert``'s claim still holds; on success the
    object shows the new values too. A stale holder (its claim expired and another replica claimed
    the alert since) changes nothing: its result is logged and dropped."""
    result = session.execute(update(Alert).where(_held(alert)).values(**values)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        log.warning("alert %s: %s by %s dropped: its claim (token %s) is no longer held, another "
                    "delivery worker has taken the alert since", alert.id, what, worker_name, alert.claim_token)
        return False
    for name, value in values.items():
        set_committed_value(alert, name, value)
    return True


def record_success(session: Session, alert: Alert, *, now: datetime, worker_name: str,
                   detail: str, accepted_only: bool = False) -> bool:
    """The transport took the message: attempt row, and the alert is sent (Teams: accepted).

    Only while ``alert``'s claim still holds (False otherwise: the attempt row is kept, marked,
    the alert is left to its newer holder)."""
    held = _apply_if_held(session, alert, {
        "attempts": alert.attempts + 1, "state": AlertState.ACCEPTED if accepted_only else AlertState.SENT,
        "sent_at": now, "claimed_by": None, "claimed_until": None, "last_error": None,
    }, worker_name=worker_name, what="success")
    session.add(DeliveryAttempt(alert_id=alert.id, at=now, worker=worker_name, ok=True,
                                detail=_clip(detail if held else f"{_STALE}{detail}")))
    return held


def record_successes(session: Session, alerts: Sequence[Alert], *, now: datetime, worker_name: str,
                     detail: str, accepted_only: bool = False) -> set[int]:
    """``record_success`` for the alerts of one sent message in two statements: one UPDATE of the
    rows still held under the token each was claimed with (``RETURNING`` their ids), one INSERT of
    an attempt row each. Returns the ids recorded; the others were stale (their attempt is kept,
    marked, the alert is left to its newer holder). Does not commit.

    Both are Core statements built once (``_SUCCESS_UPDATE``) and run on the session's connection:
    a delivery round records one per message, and the ORM's bulk-update path and building the
    statement anew cost more than the statements themselves."""
    if not alerts:
        return set()
    state = AlertState.ACCEPTED if accepted_only else AlertState.SENT
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One round trip: the UPDATE … RETURNING feeds the attempts' INSERT in the same statement.
        held = set(connection.execute(_SUCCESS_PG, {
            "ids": [a.id for a in alerts], "tokens": [a.claim_token for a in alerts], "new_state": state,
            "at": now, "worker": worker_name, "detail": _clip(detail),
            "stale_detail": _clip(f"{_STALE}{detail}")}).scalars())
        _log_stale(alerts, held, worker_name)
        return held
    held: set[int] = set()
    for start in range(0, len(alerts), _ENQUEUE_CHUNK):
        chunk = alerts[start:start + _ENQUEUE_CHUNK]
        # Under its token, a row's attempts are still the claimed copy's: ``attempts + 1`` in SQL
        # is what record_success writes from the copy.
        held.update(connection.execute(_SUCCESS_UPDATE, {
            "held": [(a.id, a.claim_token) for a in chunk], "new_state": state, "at": now}).scalars())
    _log_stale(alerts, held, worker_name)
    connection.execute(_ATTEMPT_INSERT, [
        {"alert_id": a.id, "at": now, "worker": worker_name, "ok": True, "permanent": False,
         "detail": _clip(detail if a.id in held else f"{_STALE}{detail}")} for a in alerts])
    return held


def _log_stale(alerts: Sequence[Alert], held: set[int], worker_name: str) -> None:
    for alert in alerts:
        if alert.id not in held:
            log.warning("alert %s: success by %s dropped: its claim (token %s) is no longer held, another "
                        "delivery worker has taken the alert since", alert.id, worker_name, alert.claim_token)


def _success_update():
    table = Alert.__table__
    return (update(table)
            .where(table.c.state == AlertState.CLAIMED,
                   tuple_(table.c.id, table.c.claim_token).in_(bindparam("held", expanding=True)))
            .values(attempts=table.c.attempts + 1, state=bindparam("new_state"), sent_at=bindparam("at"),
                    claimed_by=None, claimed_until=None, last_error=None)
            .returning(table.c.id))


def _success_pg():
    """PostgreSQL: ``_SUCCESS_UPDATE`` and the attempts' INSERT as one statement (data-modifying
    CTEs; SQLite has none, so it runs the two). The alerts come as two arrays (ids, claim tokens),
    so the statement's text is the same for every message and the server prepares it once::

        WITH held AS (SELECT * FROM unnest(:ids, :tokens) WITH ORDINALITY AS held(id, token, ord)),
             done AS (UPDATE alert SET … FROM held WHERE alert.state = 'CLAIMED'
                      AND alert.id = held.id AND alert.claim_token = held.token RETURNING alert.id),
             attempts AS (INSERT INTO delivery_attempt (…) SELECT held.id, …, CASE WHEN done.id IS NULL
                          THEN :stale_detail ELSE :detail END FROM held LEFT JOIN done … ORDER BY held.ord)
        SELECT done.id FROM done

    Every statement of a WITH sees the same snapshot, and the INSERT reads the UPDATE's RETURNING,
    so a row's attempt says whether its claim still held, as the two statements do."""
    from sqlalchemy import ARRAY, Integer, case, false, insert, true
    from sqlalchemy import select as core_select

    table, attempt = Alert.__table__, DeliveryAttempt.__table__
    held = (func.unnest(bindparam("ids", type_=ARRAY(Integer)), bindparam("tokens", type_=ARRAY(Integer)))
            .table_valued("id", "token", with_ordinality="ord").render_derived(name="held").alias("held"))
    held_cte = core_select(held.c.id, held.c.token, held.c.ord).cte("held")
    done = (update(table)
            .where(table.c.state == AlertState.CLAIMED, table.c.id == held_cte.c.id,
                   table.c.claim_token == held_cte.c.token)
            .values(attempts=table.c.attempts + 1, state=bindparam("new_state"), sent_at=bindparam("at"),
                    claimed_by=None, claimed_until=None, last_error=None)
            .returning(table.c.id).cte("done"))
    rows = (core_select(held_cte.c.id, bindparam("at", type_=attempt.c.at.type),
                        bindparam("worker", type_=attempt.c.worker.type), true(), false(),
                        case((done.c.id.is_(None), bindparam("stale_detail", type_=attempt.c.detail.type)),
                             else_=bindparam("detail", type_=attempt.c.detail.type)))
            .select_from(held_cte.outerjoin(done, done.c.id == held_cte.c.id))
            .order_by(held_cte.c.ord))
    attempts = (insert(attempt).from_select(["alert_id", "at", "worker", "ok", "permanent", "detail"], rows)
                .cte("attempts"))
    return core_select(done.c.id).add_cte(attempts)


_SUCCESS_UPDATE = _success_update()
_SUCCESS_PG = _success_pg()
_ATTEMPT_INSERT = DeliveryAttempt.__table__.insert()


def record_failure(session: Session, alert: Alert, *, now: datetime, worker_name: str, detail: str,
                   permanent: bool, max_attempts: int, backoff_base_seconds: int,
                   backoff_max_seconds: int) -> AlertState | None:
    """A failed attempt: retry later with exponential backoff, or dead when permanent/exhausted.

    Returns the alert's new state; DEAD means the caller must tell an operator. None: the claim
    no longer holds, so nothing changed but the (marked) attempt row.
    """
    attempts = alert.attempts + 1
    values: dict = {"attempts": attempts, "last_error": _clip(detail), "claimed_by": None, "claimed_until": None}
    if permanent or attempts >= max_attempts:
        values["state"] = AlertState.DEAD
    else:
        values["state"] = AlertState.PENDING
        values["next_attempt_at"] = now + backoff(attempts, base_seconds=backoff_base_seconds,
                                                  max_seconds=backoff_max_seconds)
    held = _apply_if_held(session, alert, values, worker_name=worker_name, what="failure")
    session.add(DeliveryAttempt(alert_id=alert.id, at=now, worker=worker_name, ok=False, permanent=permanent,
                                detail=_clip(detail if held else f"{_STALE}{detail}")))
    return values["state"] if held else None


def record_cancelled(session: Session, alert: Alert, *, reason: str) -> bool:
    """The alert is moot (its deadline closed while it waited, e.g. in retries): nothing is sent,
    no attempt is made, and the reason stays on the row. Only while the claim holds."""
    return _apply_if_held(session, alert, {
        "state": AlertState.CANCELLED, "last_error": _clip(f"not sent: {reason}"), "claimed_by": None,
        "claimed_until": None}, worker_name=alert.claimed_by or "?", what="cancellation")
