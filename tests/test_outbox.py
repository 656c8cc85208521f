"""The outbox: one row per key, exclusive claims, expiring claims, retries with backoff, dead letters."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlmodel import Session, select

from watchdog import outbox
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, DeliveryAttempt, NewAlert

from conftest import at

NOW = at("2025-03-04T10:00")


def new(key: str, *, address: str = "a@kommune.example.dk", send_after=NOW, channel=Channel.EMAIL) -> NewAlert:
    return NewAlert(key=key, kind=AlertKind.TEST, stage="test", recipient_address=address,
                    channel=channel, send_after=send_after, payload={"subject": key})


def test_planning_the_same_alert_twice_stores_it_once(session):
    assert outbox.enqueue(session, [new("k1"), new("k2")], now=NOW) == 2
    assert outbox.enqueue(session, [new("k1"), new("k2"), new("k3")], now=NOW) == 1
    session.commit()
    assert sorted(a.key for a in session.exec(select(Alert)).all()) == ["k1", "k2", "k3"]


def test_two_replicas_enqueueing_the_same_alerts_at_once_store_each_once(engine, engine_factory):
    alerts = [new(f"race-{i}") for i in range(200)]
    engines = [engine_factory(), engine_factory()]
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def plan(eng):
        with Session(eng) as s:
            barrier.wait()
            counts.append(outbox.enqueue(s, alerts, now=NOW))
            s.commit()

    threads = [threading.Thread(target=plan, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(counts) == 200
    with Session(engine) as s:
        assert len(s.exec(select(Alert)).all()) == 200


def test_only_due_alerts_are_claimed_and_a_claimed_alert_is_not_claimed_again(engine):
    with Session(engine) as s:
        outbox.enqueue(s, [new("due"), new("later", send_after=NOW + timedelta(hours=1))], now=NOW)
        s.commit()
    with Session(engine) as s:
        first = outbox.claim_due(s, now=NOW, worker_name="w1", claim_seconds=300, limit=10)
    with Session(engine) as s:
        second = outbox.claim_due(s, now=NOW, worker_name="w2", claim_seconds=300, limit=10)
    assert [a.key for a in first] == ["due"]
    assert first[0].state == AlertState.CLAIMED and first[0].claimed_by == "w1"
    assert first[0].claimed_until == NOW + timedelta(seconds=300)
    assert second == []


def test_a_claim_left_by_a_crashed_worker_expires_and_is_taken_again(engine):
    with Session(engine) as s:
        outbox.enqueue(s, [new("k")], now=NOW)
        s.commit()
    with Session(engine) as s:
        assert len(outbox.claim_due(s, now=NOW, worker_name="crashed", claim_seconds=300, limit=10)) == 1
    with Session(engine) as s:
        assert outbox.claim_due(s, now=NOW + timedelta(seconds=299), worker_name="w2",
                                claim_seconds=300, limit=10) == []
    with Session(engine) as s:
        again = outbox.claim_due(s, now=NOW + timedelta(seconds=301), worker_name="w2",
                                 claim_seconds=300, limit=10)
    assert [(a.key, a.claimed_by) for a in again] == [("k", "w2")]


def test_transient_failures_back_off_exponentially_and_end_dead_at_max_attempts(engine):
    with Session(engine) as s:
        outbox.enqueue(s, [new("k")], now=NOW)
        s.commit()
    now = NOW
    waits = []
    state = None
    for _ in range(4):
        with Session(engine) as s:
            (alert,) = outbox.claim_due(s, now=now, worker_name="w", claim_seconds=60, limit=10)
            state = outbox.record_failure(s, alert, now=now, worker_name="w", detail="connection refused",
                                          permanent=False, max_attempts=4, backoff_base_seconds=60,
                                          backoff_max_seconds=150)
            s.commit()
            if state == AlertState.PENDING:
                waits.append(alert.next_attempt_at - now)
                # one second early: not due yet
                assert outbox.claim_due(s, now=alert.next_attempt_at - timedelta(seconds=1),
                                        worker_name="w", claim_seconds=60, limit=10) == []
                now = alert.next_attempt_at
    assert waits == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=150)]
    assert state == AlertState.DEAD
    with Session(engine) as s:
        attempts = s.exec(select(DeliveryAttempt)).all()
        assert len(attempts) == 4 and not any(a.ok for a in attempts)
        assert all(a.detail == "connection refused" for a in attempts)
        assert s.exec(select(Alert)).one().last_error == "connection refused"


def test_a_permanent_failure_is_dead_at_once_and_retry_revives_it(engine):
    with Session(engine) as s:
        outbox.enqueue(s, [new("k")], now=NOW)
        s.commit()
        (alert,) = outbox.claim_due(s, now=NOW, worker_name="w", claim_seconds=60, limit=10)
        state = outbox.record_failure(s, alert, now=NOW, worker_name="w", detail="550 no such user",
                                      permanent=True, max_attempts=8, backoff_base_seconds=60,
                                      backoff_max_seconds=3600)
        s.commit()
        assert state == AlertState.DEAD
        assert outbox.claim_due(s, now=NOW + timedelta(days=1), worker_name="w", claim_seconds=60, limit=10) == []
        assert outbox.retry(s, now=NOW + timedelta(days=1)) == 1
        s.commit()
        (again,) = outbox.claim_due(s, now=NOW + timedelta(days=1), worker_name="w", claim_seconds=60, limit=10)
        assert again.attempts == 0


def test_success_records_the_attempt_and_a_teams_workflow_is_only_accepted(engine):
    with Session(engine) as s:
        outbox.enqueue(s, [new("mail"), new("teams", address="workflows://x/y/z", channel=Channel.TEAMS)], now=NOW)
        s.commit()
        claimed = outbox.claim_due(s, now=NOW, worker_name="w", claim_seconds=60, limit=10)
        for alert in claimed:
            outbox.record_success(s, alert, now=NOW, worker_name="w", detail="ok",
                                  accepted_only=alert.channel == Channel.TEAMS)
        s.commit()
        states = {a.key: (a.state, a.sent_at, a.attempts) for a in s.exec(select(Alert)).all()}
    assert states == {"mail": (AlertState.SENT, NOW, 1), "teams": (AlertState.ACCEPTED, NOW, 1)}


def test_released_claims_are_pending_again_at_once(engine):
    with Session(engine) as s:
        outbox.enqueue(s, [new("k")], now=NOW)
        s.commit()
        claimed = outbox.claim_due(s, now=NOW, worker_name="w", claim_seconds=300, limit=10)
        assert outbox.release(s, claimed, worker_name="w") == 1
        s.commit()
        assert len(outbox.claim_due(s, now=NOW, worker_name="w2", claim_seconds=300, limit=10)) == 1


def test_parallel_claimers_never_claim_the_same_row(engine, engine_factory):
    with Session(engine) as s:
        outbox.enqueue(s, [new(f"k{i}", address=f"w{i % 37}@x.dk") for i in range(300)], now=NOW)
        s.commit()
    got: dict[str, list[int]] = {"a": [], "b": []}

    def worker(name):
        eng = engine_factory()
        while True:
            with Session(eng) as s:
                batch = outbox.claim_due(s, now=NOW, worker_name=name, claim_seconds=300, limit=7)
            if not batch:
                return
            got[name].extend(a.id for a in batch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 300


def test_a_claim_takes_at_most_its_limit_even_over_a_large_backlog(engine):
    # On PostgreSQL an UPDATE … WHERE id IN (SELECT … LIMIT n SKIP LOCKED) once claimed ten
    # times the limit; one replica then held most of the backlog while the others idled.
    with Session(engine) as s:
        outbox.enqueue(s, [new(f"bulk-{i}", address=f"w{i % 40}@kommune.example.dk") for i in range(2000)],
                       now=NOW)
        s.commit()
    with Session(engine) as s:
        first = outbox.claim_due(s, now=NOW, worker_name="w1", claim_seconds=300, limit=25)
    with Session(engine) as s:
        second = outbox.claim_due(s, now=NOW, worker_name="w2", claim_seconds=300, limit=25)
    assert len(first) == 25 and len(second) == 25
    assert not {a.id for a in first} & {a.id for a in second}
    with Session(engine) as s:
        claimed = s.exec(select(Alert).where(Alert.state == AlertState.CLAIMED)).all()
    assert len(claimed) == 50
