"""A replica whose claim expired cannot overwrite the newer holder's outcome (issue 12, point 3).

Real ``claim_due`` in two sessions (two replicas) on SQLite and PostgreSQL: A claims, A's claim
expires, B claims and records; then A records too late, and is dropped.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from conftest import at
from fixtures_servers import settings_for
from watchdog import delivery_round, outbox
from watchdog.delivery import SendResult, Transport
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, DeliveryAttempt, NewAlert

T0 = at("2025-03-04T10:00")
CLAIM = 60


def enqueue_one(engine, key: str = "k", address: str = "anne@kommune.example.dk") -> None:
    with Session(engine) as s:
        outbox.enqueue(s, [NewAlert(key=key, kind=AlertKind.TEST, stage="test", recipient_address=address,
                                    channel=Channel.EMAIL, send_after=T0,
                                    payload={"subject": "Test", "text": "En test."})], now=T0)
        s.commit()


def claim(engine, worker: str, now) -> list[Alert]:
    with Session(engine, expire_on_commit=False) as s:
        return outbox.claim_due(s, now=now, worker_name=worker, claim_seconds=CLAIM, limit=10)


def stored(engine) -> Alert:
    with Session(engine) as s:
        return s.exec(select(Alert)).one()


def fail(engine, alert: Alert, worker: str, now, *, permanent: bool):
    with Session(engine) as s:
        state = outbox.record_failure(s, alert, now=now, worker_name=worker, detail="connection refused",
                                      permanent=permanent, max_attempts=8, backoff_base_seconds=60,
                                      backoff_max_seconds=3600)
        s.commit()
    return state


def test_a_stale_holders_failure_does_not_turn_sent_back_into_pending_or_dead(engine, engine_factory):
    enqueue_one(engine)
    replica_a, replica_b = engine_factory(), engine_factory()
    [held_by_a] = claim(replica_a, "A", T0)
    assert claim(replica_b, "B", T0 + timedelta(seconds=CLAIM - 1)) == []  # A's claim still holds
    [held_by_b] = claim(replica_b, "B", T0 + timedelta(seconds=CLAIM + 1))  # expired: B takes it
    assert held_by_b.claim_token == held_by_a.claim_token + 1
    with Session(replica_b) as s:
        assert outbox.record_success(s, held_by_b, now=T0 + timedelta(seconds=CLAIM + 2), worker_name="B",
                                     detail="250 OK")
        s.commit()

    for permanent in (False, True):  # a transient failure (→ pending) or a permanent one (→ dead)
        assert fail(replica_a, held_by_a, "A", T0 + timedelta(seconds=CLAIM + 3), permanent=permanent) is None
        row = stored(engine)
        assert (row.state, row.attempts, row.last_error) == (AlertState.SENT, 1, None)
    with Session(engine) as s:
        attempts = s.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
    assert [(a.worker, a.ok) for a in attempts] == [("B", True), ("A", False), ("A", False)]
    assert attempts[1].detail.startswith("stale claim")  # the attempt is kept, its outcome dropped


def test_a_stale_holders_success_leaves_the_alert_to_its_new_holder(engine, engine_factory):
    enqueue_one(engine)
    replica_a, replica_b = engine_factory(), engine_factory()
    [held_by_a] = claim(replica_a, "A", T0)
    [held_by_b] = claim(replica_b, "B", T0 + timedelta(seconds=CLAIM + 1))
    with Session(replica_a) as s:
        assert outbox.record_success(s, held_by_a, now=T0 + timedelta(seconds=CLAIM + 2), worker_name="A",
                                     detail="250 OK") is False
        s.commit()
    row = stored(engine)
    assert (row.state, row.claimed_by) == (AlertState.CLAIMED, "B")
    # B's own failure still counts: its claim is the one that holds.
    assert fail(replica_b, held_by_b, "B", T0 + timedelta(seconds=CLAIM + 3), permanent=False) == AlertState.PENDING
    assert stored(engine).attempts == 1
    # And A cannot release B's claim either.
    with Session(replica_a) as s:
        assert outbox.release(s, [held_by_a], worker_name="A") == 0


def test_a_replica_that_records_its_failure_after_another_delivered_the_alert_is_dropped(
        engine, engine_factory, smtp_server):
    settings = settings_for(smtp_server, delivery={"claim_timeout_seconds": CLAIM})
    enqueue_one(engine)
    replica_a = engine_factory()
    [held_by_a] = claim(replica_a, "A", T0)  # A sends … and hangs past its claim
    later = T0 + timedelta(seconds=CLAIM + 1)
    report = delivery_round.deliver(engine, settings, now=later, transport=Transport(settings), worker_name="B")
    assert report.sent == 1 and len(smtp_server.to("anne@kommune.example.dk")) == 1
    outcomes = delivery_round._record_outcome(replica_a, settings, [held_by_a],
                                              SendResult(ok=False, detail="timed out", permanent=False),
                                              channel=Channel.EMAIL, now=later + timedelta(seconds=5),
                                              worker_name="A")
    assert outcomes == {"stale": 1}
    row = stored(engine)
    assert row.state == AlertState.SENT and row.attempts == 1
    # Sent stays sent: the next round has nothing to send again.
    assert delivery_round.deliver(engine, settings, now=later + timedelta(minutes=10),
                                  transport=Transport(settings), worker_name="B").claimed == 0


def test_recording_a_messages_successes_keeps_the_held_and_drops_the_stale_in_one_go(engine, engine_factory):
    """``record_successes`` (on PostgreSQL one statement: the UPDATE feeds the attempts' INSERT):
    of three alerts of one message, the one another replica has taken since keeps its new holder,
    the other two are sent; every alert gets its attempt, in the message's order."""
    for n in range(3):
        enqueue_one(engine, key=f"k{n}")
    replica_a, replica_b = engine_factory(), engine_factory()
    held_by_a = claim(replica_a, "A", T0)
    assert len(held_by_a) == 3
    with Session(replica_a) as s:  # A gives the middle one back; B claims it
        assert outbox.release(s, [held_by_a[1]], worker_name="A") == 1
        s.commit()
    [taken_by_b] = claim(replica_b, "B", T0 + timedelta(seconds=1))
    assert taken_by_b.id == held_by_a[1].id
    done_at = T0 + timedelta(seconds=2)
    with Session(replica_a) as s:
        recorded = outbox.record_successes(s, held_by_a, now=done_at, worker_name="A", detail="250 OK")
        s.commit()
    assert recorded == {held_by_a[0].id, held_by_a[2].id}
    with Session(engine) as s:
        rows = {a.id: a for a in s.exec(select(Alert))}
        attempts = s.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
    for alert in (held_by_a[0], held_by_a[2]):
        row = rows[alert.id]
        assert (row.state, row.attempts, row.sent_at, row.claimed_by, row.claimed_until) == (
            AlertState.SENT, 1, done_at, None, None)
    assert (rows[taken_by_b.id].state, rows[taken_by_b.id].claimed_by) == (AlertState.CLAIMED, "B")
    assert [(a.alert_id, a.worker, a.ok, a.permanent, a.at) for a in attempts] == [
        (alert.id, "A", True, False, done_at) for alert in held_by_a]
    assert [a.detail for a in attempts] == ["250 OK", "stale claim, outcome not recorded: 250 OK", "250 OK"]
