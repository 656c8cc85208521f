"""Stage 4, the outbox: one row per planned alert, unique by (deadline, stage, recipient, channel).

I/O: the database only. Planning the same alert twice stores it once (the unique ``key``).
Delivery claims due rows, sends, records every attempt in ``delivery_attempt`` and the outcome
on the alert; a claim that is never finished expires and is taken again. Every claim gets a new
fencing token (``claim_token``), and an outcome is recorded only under the token it was claimed
with: a replica whose claim expired cannot overwrite what the newer holder recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, bindparam, func, or_, tuple_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Field, Session, SQLModel, select

from watchdog.clock import ensure_aware
from watchdog.db import dialect_insert


class AlertState(StrEnum):
    PENDING = "pending"  # waiting for its send time (or its next retry)
    CLAIMED = "claimed"  # a delivery worker holds it until claimed_until
    SENT = "sent"  # the server took it (SMTP accepted; for Teams see ACCEPTED)
    ACCEPTED = "accepted"  # a Teams workflow answered 2xx: accepted, not proven posted or read
    DEAD = "dead"  # permanent failure or retries exhausted: an operator was alerted
    CANCELLED = "cancelled"  # not sent: its deadline closed (met, excepted …) before it went out


class AlertKind(StrEnum):
    WARNING = "warning"  # before a deadline
    ESCALATION = "escalation"  # at breach, to the team leader
    REMINDER = "reminder"  # repeated while a breach stays open
    DIGEST = "digest"  # the weekly digest to a leader; the daily digest to a worker who chose it
    INTAKE_SILENCE = "intake_silence"  # no notifications registered for too long
    OPS = "ops"  # an operator alert (dead letters)
    TEST = "test"
    ACK_ENDED = "ack_ended"  # "jeg er på sagen" ended and the deadline is still open


class Channel(StrEnum):
    EMAIL = "email"
    TEAMS = "teams"


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True, max_length=300)
    kind: AlertKind = Field(index=True)
    stage: str = Field(max_length=40)  # e.g. "before_30d", "at_receipt", "breach", "reminder_7d", "backlog"
    deadline_id: int | None = Field(default=None, foreign_key="deadline.id", index=True)
    recipient_worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    recipient_address: str = Field(max_length=2000)  # email address or Teams workflow URL
    channel: Channel
    send_after: datetime = Field(index=True)  # planned send time
    payload: str = Field(default="{}")  # JSON: what the message needs beyond the deadline row
    state: AlertState = Field(default=AlertState.PENDING, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = None
    # The fencing token: one more on every claim. Recording an outcome is conditional on the
    # token the recorder got with its claim, so a holder whose claim expired (and was taken by
    # another replica) cannot overwrite the newer holder's result.
    claim_token: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime


class DeliveryAttempt(SQLModel, table=True):
    """Every attempt to deliver an alert: its instant, result and error text."""

    __tablename__ = "delivery_attempt"
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    at: datetime = Field(index=True)
    worker: str = Field(max_length=200)  # which delivery process made the attempt
    ok: bool
    permanent: bool = False
    detail: str | None = Field(default=None, max_length=2000)


# ---------------------------------------------------------------------------------------------
# Functions: enqueue, claim, record, inspect. Each takes the session as a keyword argument and
# never commits on its own, except ``claim_due`` (a claim is worthless until other replicas see it).
# ---------------------------------------------------------------------------------------------

log = logging.getLogger(__name__)

_STALE = "stale claim, outcome not recorded: "
CLOSED_STATES = (AlertState.SENT, AlertState.ACCEPTED, AlertState.DEAD, AlertState.CANCELLED)
_ENQUEUE_CHUNK = 5000


@dataclass(frozen=True)
class NewAlert:
    """An alert as planning (or the digest, the intake check, the dead-letter path) wants it."""

    key: str
    kind: AlertKind
    stage: str
    recipient_address: str
    channel: Channel
    send_after: datetime
    deadline_id: int | None = None
    recipient_worker_id: int | None = None
    payload: dict | None = None  # prerendered message for DIGEST/OPS/INTAKE_SILENCE/TEST


def alert_key(deadline_id: int, stage: str, recipient: int | str, channel: Channel) -> str:
    """The unique key of a deadline alert: the same alert planned twice has the same key."""
    return f"{deadline_id}:{stage}:{recipient}:{Channel(channel).value}"


def enqueue(session: Session, alerts: Iterable[NewAlert], *, now: datetime) -> int:
    """Store the alerts; a key that is already in the outbox is ignored. Returns how many were new.

    ``INSERT … ON CONFLICT (key) DO NOTHING``, not check-then-insert: two replicas planning the
    same alert at the same moment must store it once, and only the database can decide that.
    """
    now = ensure_aware(now, what="now")
    rows: dict[str, dict] = {}
    for a in alerts:
        send_after = ensure_aware(a.send_after, what=f"alert {a.key} send_after")
        rows.setdefault(a.key, {
            "key": a.key,
            "kind": AlertKind(a.kind),
            "stage": a.stage,
            "deadline_id": a.deadline_id,
            "recipient_worker_id": a.recipient_worker_id,
            "recipient_address": a.recipient_address,
            "channel": Channel(a.channel),
            "send_after": send_after,
            "payload": json.dumps(a.payload or {}, ensure_ascii=False, sort_keys=True),
            "state": AlertState.PENDING,
            "attempts": 0,
            "next_attempt_at": send_after,
            "created_at": now,
        })
    if not rows:
        return 0
    values = list(rows.values())
    if session.get_bind().dialect.name == "postgresql":
        return _enqueue_unnest(session, values)
    # One Core statement run as an executemany, compiled once and batched by the driver's
    # insertmanyvalues: a multi-VALUES ``.values([...])`` per chunk was compiled afresh every time
    # (13 bind parameters a row), most of the first poll's enqueueing at go-live.
    table = Alert.__table__
    stmt = dialect_insert(session)(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    inserted = 0
    for start in range(0, len(values), _ENQUEUE_CHUNK):
        inserted += len(session.execute(stmt, values[start:start + _ENQUEUE_CHUNK]).all())
    return inserted


def _enqueue_unnest(session: Session, values: list[dict]) -> int:
    """PostgreSQL: ``INSERT … SELECT FROM unnest(<one array a column>) ON CONFLICT (key) DO
    NOTHING RETURNING id`` per chunk. A statement text that never changes, so psycopg does not
    parse a new multi-VALUES statement of thousands of parameters for every batch."""
    from sqlalchemy import text

    c = Alert.__table__.c
    columns = list(values[0])
    sql_types = {"kind": f"{c.kind.type.name}[]", "channel": f"{c.channel.type.name}[]",
                 "state": f"{c.state.type.name}[]", "deadline_id": "INTEGER[]", "recipient_worker_id": "INTEGER[]",
                 "attempts": "INTEGER[]", "send_after": "TIMESTAMPTZ[]", "next_attempt_at": "TIMESTAMPTZ[]",
                 "created_at": "TIMESTAMPTZ[]"}
    enums = {"kind", "channel", "state"}  # PostgreSQL's enum types hold the members' names
    arrays = ", ".join(f"CAST(:{name} AS {sql_types.get(name, 'VARCHAR[]')})" for name in columns)
    stmt = text(f'INSERT INTO alert ({", ".join(columns)}) SELECT * FROM unnest({arrays}) '
                "ON CONFLICT (key) DO NOTHING RETURNING id")
    inserted = 0
    for start in range(0, len(values), _ENQUEUE_CHUNK):
        chunk = values[start:start + _ENQUEUE_CHUNK]
        params = {name: [row[name].name if name in enums else row[name] for row in chunk] for name in columns}
        inserted += len(session.execute(stmt, params).all())
    return inserted


def _claimable(now: datetime):
    """Due pending rows, and rows whose claim has expired (the claimer crashed or hung)."""
    return or_(
        and_(Alert.state == AlertState.PENDING, Alert.next_attempt_at <= now),
        and_(Alert.state == AlertState.CLAIMED, Alert.claimed_until < now),
    )


def claim_due(session: Session, *, now: datetime, worker_name: str, claim_seconds: int,
              limit: int | None, recipient: tuple[str, Channel] | None = None) -> list[Alert]:
    """Claim up to ``limit`` due alerts for ``worker_name`` and commit; return the claimed rows.

    One short transaction: ``WITH picked AS MATERIALIZED (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)
    UPDATE … WHERE id IN (SELECT id FROM picked) RETURNING id`` on PostgreSQL, so a second replica skips the rows this one is claiming instead of waiting for
    them; SQLite ignores FOR UPDATE but serialises writers, and the UPDATE re-checks the state, so
    a row another process claimed first is simply not returned. Rows come ordered by recipient and
    channel so that one recipient's alerts are claimed together and can become one message.
    ``recipient`` (address, channel) claims only that recipient's due alerts: the rest of a
    recipient whose alerts a full batch cut in two, so that they still make one message.
    """
    now = ensure_aware(now, what="now")
    claimable = _claimable(now)
    if recipient is not None:
        claimable = and_(claimable, Alert.recipient_address == recipient[0],
                         Alert.channel == Channel(recipient[1]))
    pick = (
        select(Alert.id)
        .where(claimable)
        .order_by(Alert.recipient_address, Alert.channel, Alert.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Pick the ids once, in a MATERIALIZED CTE: as a plain IN (subquery) PostgreSQL may run
        # the LIMIT … SKIP LOCKED subquery again per row and claim far more than ``limit`` rows
        # (seen: 253 claimed for limit 25), starving the other replicas and letting claims expire
        # while their owner is still sending.
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        chosen = Alert.id.in_(select(picked.c.id))
    else:
        chosen = Alert.id.in_(pick.scalar_subquery())
    stmt = (
        update(Alert)
        .where(chosen, claimable)
        .values(state=AlertState.CLAIMED, claimed_by=worker_name,
                claimed_until=now + timedelta(seconds=claim_seconds), claim_token=Alert.claim_token + 1)
        .returning(Alert.id)
        .execution_options(synchronize_session=False)
    )
    ids = [row[0] for row in session.execute(stmt).all()]
    session.commit()
    if not ids:
        return []
    # populate_existing: the identity map may hold a stale copy from before the UPDATE (one
    # query, not a refresh per row).
    claimed = session.exec(
        select(Alert).where(Alert.id.in_(ids)).order_by(Alert.recipient_address, Alert.channel, Alert.id)
        .execution_options(populate_existing=True)
    ).all()
    return list(claimed)


def backoff(attempts: int, *, base_seconds: int, max_seconds: int) -> timedelta:
    """Wait before retry number ``attempts`` (1 = after the first failure): base·2^(n-1), capped.

    No jitter: replicas already spread out by claiming different rows, and a deterministic
    schedule is what the tests (and an operator reading ``next_attempt_at``) can check.
    """
    exponent = max(attempts - 1, 0)
    if exponent > 40:  # 2**40 seconds is already far beyond any sensible cap
        return timedelta(seconds=max_seconds)
    return timedelta(seconds=min(base_seconds * 2 ** exponent, max_seconds))


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


def release(session: Session, alerts: Sequence[Alert], *, worker_name: str) -> int:
    """Give back claims that were not attempted (shutdown), so no one waits for them to expire.
    Only claims still held (the token each was claimed with)."""
    rows = [{"b_id": a.id, "b_token": a.claim_token} for a in alerts]
    if not rows:
        return 0
    table = Alert.__table__
    result = session.execute(update(table).where(
        table.c.id == bindparam("b_id"), table.c.claim_token == bindparam("b_token"),
        table.c.state == AlertState.CLAIMED, table.c.claimed_by == worker_name,
    ).values(state=AlertState.PENDING, claimed_by=None, claimed_until=None), rows)
    return result.rowcount or 0


def planned_stages(session: Session, deadline_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(deadline id, stage) pairs already in the outbox, for any recipient or state."""
    ids = sorted(set(deadline_ids))
    found: set[tuple[int, str]] = set()
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        rows = session.execute(
            select(Alert.deadline_id, Alert.stage).where(Alert.deadline_id.in_(chunk)).distinct()
        ).all()
        found.update((int(d), str(s)) for d, s in rows)
    return found


def list_alerts(session: Session, *, state: AlertState | None = None, limit: int = 50) -> list[Alert]:
    """The newest alerts (optionally in one state), for inspection."""
    query = select(Alert)
    if state is not None:
        query = query.where(Alert.state == state)
    return list(session.exec(query.order_by(Alert.id.desc()).limit(limit)).all())


def attempts_of(session: Session, alert_id: int) -> list[DeliveryAttempt]:
    return list(session.exec(
        select(DeliveryAttempt).where(DeliveryAttempt.alert_id == alert_id).order_by(DeliveryAttempt.id)
    ).all())


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Alert.state, func.count()).group_by(Alert.state)).all()
    return {AlertState(s).value: int(n) for s, n in rows}


def retry(session: Session, *, now: datetime, alert_ids: Sequence[int] | None = None) -> int:
    """Put dead alerts (all, or the given ones) back to pending, due now, with a fresh attempt budget.

    The attempt history stays in ``delivery_attempt``; only the counter on the alert restarts.
    """
    stmt = update(Alert).where(Alert.state == AlertState.DEAD)
    if alert_ids is not None:
        stmt = stmt.where(Alert.id.in_(list(alert_ids)))
    stmt = stmt.values(state=AlertState.PENDING, attempts=0, next_attempt_at=now,
                       claimed_by=None, claimed_until=None).execution_options(synchronize_session=False)
    return session.execute(stmt).rowcount or 0


def payload_of(alert: Alert) -> dict:
    return json.loads(alert.payload or "{}")


def _clip(text: str | None, limit: int = 2000) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
