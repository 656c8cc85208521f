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

from sqlalchemy import and_, bindparam, func, or_, update
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
# Functions: enqueue, claim, record (``outbox_outcomes``, through this module), inspect. Each takes
# the session as a keyword argument and never commits on its own, except ``claim_due`` (a claim is worthless until other replicas see it).
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


# Recording outcomes lives in its own module (``outbox_outcomes``, which imports this one's table
# classes); callers use it through this one, resolved on first use.
_OUTCOMES = frozenset({"record_success", "record_successes", "record_failure", "record_cancelled"})


def __getattr__(name: str):
    if name in _OUTCOMES:
        from watchdog import outbox_outcomes

        value = globals()[name] = getattr(outbox_outcomes, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
