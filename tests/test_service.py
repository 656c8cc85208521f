"""delivery_round.deliver: a long round claims each batch at its own instant, so claims do not expire
in the middle of their owner's round."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from fixtures_servers import settings_for
from watchdog import delivery_round, outbox
from watchdog.delivery import Transport
from watchdog.outbox import AlertKind, Channel, DeliveryAttempt, NewAlert

from conftest import at


def test_each_claim_batch_of_a_long_round_uses_the_clock_not_the_rounds_start(engine, smtp_server):
    t0 = at("2025-06-04T09:00")
    with Session(engine) as s:
        outbox.enqueue(s, [NewAlert(key=f"k{i}", kind=AlertKind.TEST, stage="test",
                                    recipient_address=f"m{i}@kommune.example.dk", channel=Channel.EMAIL,
                                    send_after=t0, payload={"subject": f"Test {i}", "text": "Prøve."})
                           for i in range(3)], now=t0)
        s.commit()
    ticks = iter([t0 + timedelta(minutes=10 * n) for n in range(10)])
    settings = settings_for(smtp_server, delivery={"batch_size": 1, "claim_timeout_seconds": 300})
    report = delivery_round.deliver(engine, settings, now=t0, transport=Transport(settings), worker_name="w",
                                    clock=lambda: next(ticks))
    assert report.sent == 3 and len(smtp_server.messages) == 3
    with Session(engine) as s:
        instants = [a.at for a in s.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()]
    # With the round's start for every batch, the third claim (made 20 minutes in) would have
    # been "valid until 09:05" and free for any other replica to take and send again.
    assert instants == [t0, t0 + timedelta(minutes=10), t0 + timedelta(minutes=20)]


def test_a_database_blip_after_the_send_is_retried_so_the_message_is_not_sent_again(engine, smtp_server):
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from watchdog.outbox import Alert, AlertState

    t0 = at("2025-06-04T09:00")
    with Session(engine) as s:
        outbox.enqueue(s, [NewAlert(key="blip", kind=AlertKind.TEST, stage="test",
                                    recipient_address="m@kommune.example.dk", channel=Channel.EMAIL,
                                    send_after=t0, payload={"subject": "Test", "text": "Prøve."})], now=t0)
        s.commit()
    failures = []

    # The seam is the database driver: the first statement writing the attempt row fails as a
    # dropped connection does during a PostgreSQL restart (on SQLite its own INSERT; on PostgreSQL
    # the one statement that records the whole outcome, the attempt's INSERT inside it).
    def drop_once(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO DELIVERY_ATTEMPT" in " ".join(statement.upper().split()) and not failures:
            failures.append(statement)
            raise OperationalError(statement, parameters, Exception("server closed the connection"))

    event.listen(engine, "before_cursor_execute", drop_once)
    try:
        settings = settings_for(smtp_server)
        report = delivery_round.deliver(engine, settings, now=t0, transport=Transport(settings), worker_name="w")
    finally:
        event.remove(engine, "before_cursor_execute", drop_once)
    assert failures, "the simulated database error never happened"
    assert report.sent == 1 and len(smtp_server.messages) == 1
    with Session(engine) as s:
        alert = s.exec(select(Alert)).one()
        assert alert.state == AlertState.SENT and alert.claimed_by is None
        assert len(s.exec(select(DeliveryAttempt)).all()) == 1
    # Nothing is left for another replica to send again.
    with Session(engine) as s:
        assert outbox.claim_due(s, now=t0 + timedelta(hours=1), worker_name="other",
                                claim_seconds=60, limit=10) == []
