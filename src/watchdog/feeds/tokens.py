"""Calendar-feed tokens. I/O: the database (table ``calendar_token``).

A token looks like ``wdc_<prefix>_<secret>`` (as the API's ``wdt_…``): only its SHA-256 hash is
stored, with the prefix in clear for lookup, so a stolen database gives no working feed URL. The
whole URL is the credential (a calendar client cannot send a header): it is shown once, when it
is made, to copy into Outlook or Google; to see it again, make a new one (which revokes the old).
Revoking makes the URL answer 404 at once.

Scopes: ``own`` (the worker's own open deadlines) and ``team`` (a leader's team; only while the
worker is an active leader).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Field, Session, SQLModel, select

from watchdog.casestore import Worker, WorkerRole
from watchdog.clock import ensure_aware
from watchdog.secret_tokens import matches, new_token, token_hash
from watchdog.errors import WatchdogError

TOKEN_PREFIX = "wdc"
OWN = "own"
TEAM = "team"


class CalendarToken(SQLModel, table=True):
    __tablename__ = "calendar_token"
    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(unique=True, index=True, max_length=16)
    token_hash: str = Field(max_length=64)  # SHA-256 hex of the whole token
    worker_id: int = Field(foreign_key="worker.id", index=True)
    scope: str = Field(max_length=10)  # "own" or "team"
    created_at: datetime
    revoked_at: datetime | None = None


class FeedRefused(WatchdogError):
    """A calendar token cannot be made (a caseworker asked for a team feed)."""


@dataclass(frozen=True)
class NewFeedToken:
    token: str  # shown once
    record: CalendarToken




def create_feed_token(session: Session, *, worker_id: int, scope: str = OWN, now: datetime) -> NewFeedToken:
    """A new feed token for the worker; their earlier token of the same scope is revoked (one
    URL per person and scope: an old URL pasted somewhere stops working). Does not commit."""
    now = ensure_aware(now, what="now")
    worker = session.get(Worker, worker_id)
    if worker is None or not worker.active:
        raise FeedRefused("no active worker with that id")
    if scope not in (OWN, TEAM):
        raise FeedRefused(f"unknown calendar scope {scope!r} (own or team)")
    if scope == TEAM and WorkerRole(worker.role) != WorkerRole.LEADER:
        raise FeedRefused("Kun teamledere kan abonnere på teamets kalender.")
    revoke_feed_tokens(session, worker_id=worker_id, scope=scope, now=now)
    prefix, token = new_token(TOKEN_PREFIX)
    record = CalendarToken(prefix=prefix, token_hash=token_hash(token), worker_id=worker_id, scope=scope, created_at=now)
    session.add(record)
    session.flush()
    return NewFeedToken(token, record)


def revoke_feed_tokens(session: Session, *, worker_id: int, scope: str | None = None, now: datetime) -> int:
    """Revoke the worker's valid feed tokens (of one scope, or all). Returns how many."""
    stmt = update(CalendarToken).where(CalendarToken.worker_id == worker_id, CalendarToken.revoked_at.is_(None))
    if scope is not None:
        stmt = stmt.where(CalendarToken.scope == scope)
    return session.execute(stmt.values(revoked_at=ensure_aware(now)).execution_options(
        synchronize_session=False)).rowcount or 0


def feed_tokens(session: Session, worker_id: int) -> list[CalendarToken]:
    """The worker's valid feed tokens (never the tokens themselves: only prefix, scope, created)."""
    return list(session.exec(select(CalendarToken).where(
        CalendarToken.worker_id == worker_id, CalendarToken.revoked_at.is_(None)).order_by(CalendarToken.id)))


def feed_owner(session: Session, token: str) -> tuple[CalendarToken, Worker] | None:
    """The valid token and its active worker, or None (unknown, revoked, inactive worker, or a
    team feed of someone who is no longer a leader): the route then answers 404 either way."""
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    record = session.exec(select(CalendarToken).where(CalendarToken.prefix == parts[1])).first()
    if record is None or not matches(record.token_hash, token) or record.revoked_at:
        return None
    worker = session.get(Worker, record.worker_id)
    if worker is None or not worker.active:
        return None
    if record.scope == TEAM and WorkerRole(worker.role) != WorkerRole.LEADER:
        return None
    return record, worker
