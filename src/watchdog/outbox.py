"""Stage 4, the outbox: one row per planned alert, unique by (deadline, stage, recipient, channel).

I/O: the database only. Planning the same alert twice stores it once (the unique ``key``).
Delivery claims due rows, sends, records every attempt in ``delivery_attempt`` and the outcome
on the alert; a claim that is never finished expires and is taken again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class AlertState(StrEnum):
    PENDING = "pending"  # waiting for its send time (or its next retry)
    CLAIMED = "claimed"  # a delivery worker holds it until claimed_until
    SENT = "sent"  # the server took it (SMTP accepted; for Teams see ACCEPTED)
    ACCEPTED = "accepted"  # a Teams workflow answered 2xx: accepted, not proven posted or read
    DEAD = "dead"  # permanent failure or retries exhausted: an operator was alerted


class AlertKind(StrEnum):
    WARNING = "warning"  # before a deadline
    ESCALATION = "escalation"  # at breach, to the team leader
    REMINDER = "reminder"  # repeated while a breach stays open
    DIGEST = "digest"  # the weekly digest to a leader
    INTAKE_SILENCE = "intake_silence"  # no notifications registered for too long
    OPS = "ops"  # an operator alert (dead letters)
    TEST = "test"


class Channel(StrEnum):
    EMAIL = "email"
    TEAMS = "teams"


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True, max_length=300)
    kind: AlertKind = Field(index=True)
    stage: str = Field(max_length=40)  # e.g. "before_30d", "at_receipt", "breach", "reminder_2"
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
