"""service.deliver: a long round claims each batch at its own instant, so claims do not expire
in the middle of their owner's round."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from fixtures_servers import settings_for
from watchdog import outbox, service
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
    report = service.deliver(engine, settings, now=t0, transport=Transport(settings), worker_name="w",
                             clock=lambda: next(ticks))
    assert report.sent == 3 and len(smtp_server.messages) == 3
    with Session(engine) as s:
        instants = [a.at for a in s.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()]
    # With the round's start for every batch, the third claim (made 20 minutes in) would have
    # been "valid until 09:05" and free for any other replica to take and send again.
    assert instants == [t0, t0 + timedelta(minutes=10), t0 + timedelta(minutes=20)]
