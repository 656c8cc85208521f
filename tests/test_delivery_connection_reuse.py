"""A delivery round keeps its SMTP connection from one message to the next (``Transport.round``),
and a connection that dies mid-round fails only the messages not yet accepted (issue 19, point 1).

Real aiosmtpd servers (``fixtures_servers.SmtpServer``) that note the client's address of every
accepted message: one address is one connection.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from conftest import at
from fixtures_servers import SmtpServer, settings_for
from watchdog import delivery_round, outbox
from watchdog.delivery import Recipient, Transport
from watchdog.render import Message
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, DeliveryAttempt, NewAlert

T0 = at("2025-06-04T09:00")
ADDRESSES = [f"m{i}@kommune.example.dk" for i in range(5)]


class CountingServer(SmtpServer):
    """Notes each accepted message's connection; ``drop_at`` (1-based) closes the connection
    instead of accepting that message; ``go_away`` also stops listening then (the relay is gone)."""

    def __init__(self, *, drop_at: int | None = None, go_away: bool = False):
        super().__init__()
        self.peers: list[tuple] = []
        self.drop_at, self.go_away = drop_at, go_away
        self.data_commands = 0

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_commands == self.drop_at:
            if self.go_away:
                self._controller.server.close()  # no new connections from now on
            server.transport.close()  # the connection dies before the reply: not accepted
            return "451 4.3.0 connection lost"
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


def enqueue(engine, addresses=ADDRESSES) -> None:
    with Session(engine) as s:
        outbox.enqueue(s, [NewAlert(key=f"k-{a}", kind=AlertKind.TEST, stage="test", recipient_address=a,
                                    channel=Channel.EMAIL, send_after=T0,
                                    payload={"subject": f"Test til {a}", "text": "Prøve."})
                           for a in addresses], now=T0)
        s.commit()


def states(engine) -> dict[str, AlertState]:
    with Session(engine) as s:
        return {a.recipient_address: AlertState(a.state) for a in s.exec(select(Alert)).all()}


def received(server: SmtpServer) -> list[str]:
    return [m.rcpt_tos[0] for m in server.messages]


def serve(server: SmtpServer):
    server.start()
    return server


def test_one_round_sends_every_message_over_one_connection(engine):
    server = serve(CountingServer())
    try:
        enqueue(engine)
        settings = settings_for(server)
        report = delivery_round.deliver(engine, settings, now=T0, transport=Transport(settings), worker_name="w")
    finally:
        server.stop()
    assert (report.messages, report.sent) == (5, 5)
    assert sorted(received(server)) == ADDRESSES
    assert len(set(server.peers)) == 1  # one connection (EHLO, MAIL … DATA ×5, QUIT), not five
    # Each message still has its own outcome: an attempt row each, naming the accepting server.
    with Session(engine) as s:
        attempts = s.exec(select(DeliveryAttempt)).all()
    assert len(attempts) == 5 and all(a.ok and "accepted the message for" in a.detail for a in attempts)


def test_messages_per_connection_caps_what_one_connection_carries(engine):
    server = serve(CountingServer())
    try:
        enqueue(engine)
        settings = settings_for(server, smtp={"messages_per_connection": 2})
        delivery_round.deliver(engine, settings, now=T0, transport=Transport(settings), worker_name="w")
    finally:
        server.stop()
    assert len(server.peers) == 5
    assert [server.peers.count(p) for p in dict.fromkeys(server.peers)] == [2, 2, 1]


def test_outside_a_round_each_send_has_its_own_connection(engine):
    server = serve(CountingServer())
    try:
        settings = settings_for(server)
        transport = Transport(settings)
        for address in ADDRESSES[:2]:
            message = Message(subject="Test", text="Prøve.", html="<p>Prøve.</p>")
            assert transport.send(message, Recipient(address, Channel.EMAIL)).ok
    finally:
        server.stop()
    assert len(set(server.peers)) == 2


def test_a_connection_dying_mid_round_fails_only_the_message_in_flight(engine):
    # The third message's connection dies before the server accepts it: the two before it were
    # accepted and are recorded sent; the third is failed and retried; the round goes on over a
    # new connection for the fourth and fifth.
    server = serve(CountingServer(drop_at=3))
    try:
        enqueue(engine)
        settings = settings_for(server, delivery={"backoff_base_seconds": 60})
        report = delivery_round.deliver(engine, settings, now=T0, transport=Transport(settings), worker_name="w")
        assert (report.sent, report.failed, report.dead) == (4, 1, 0)
        assert states(engine) == {a: AlertState.PENDING if a == ADDRESSES[2] else AlertState.SENT
                                  for a in ADDRESSES}
        assert sorted(received(server)) == [a for a in ADDRESSES if a != ADDRESSES[2]]
        assert len(set(server.peers)) == 2  # a new connection after the dead one
        # The failed one goes out at its retry, once; nothing else is sent again.
        later = T0 + timedelta(seconds=61)
        assert delivery_round.deliver(engine, settings, now=later, transport=Transport(settings),
                                      worker_name="w").sent == 1
    finally:
        server.stop()
    assert sorted(received(server)) == ADDRESSES
    assert set(states(engine).values()) == {AlertState.SENT}


def test_a_relay_that_goes_away_mid_round_fails_the_rest_and_loses_none(engine):
    server = serve(CountingServer(drop_at=3, go_away=True))
    try:
        enqueue(engine)
        settings = settings_for(server, smtp={"timeout_seconds": 2}, delivery={"backoff_base_seconds": 60})
        report = delivery_round.deliver(engine, settings, now=T0, transport=Transport(settings), worker_name="w")
    finally:
        server.stop()
    assert (report.sent, report.failed, report.dead) == (2, 3, 0)
    assert states(engine) == {a: AlertState.SENT if a in ADDRESSES[:2] else AlertState.PENDING for a in ADDRESSES}
    with Session(engine) as s:
        failed = s.exec(select(Alert).where(Alert.state == AlertState.PENDING)).all()
    assert all(a.attempts == 1 and a.next_attempt_at > T0 for a in failed)
    # The relay is back: the three go out at their retry, once each.
    back = SmtpServer(port=server.port)
    back.start()
    try:
        delivery_round.deliver(engine, settings, now=T0 + timedelta(seconds=61), transport=Transport(settings),
                               worker_name="w")
    finally:
        back.stop()
    assert sorted(received(back)) == ADDRESSES[2:]
    assert set(states(engine).values()) == {AlertState.SENT}


def test_a_kept_connection_the_relay_dropped_while_idle_is_replaced_not_failed(monkeypatch):
    from watchdog import apprise_email

    monkeypatch.setattr(apprise_email, "IDLE_CHECK_SECONDS", 0.0)  # check before every reuse
    server = serve(CountingServer())
    transport = Transport(settings_for(server))
    message = Message(subject="Test", text="Prøve.", html="<p>Prøve.</p>")
    try:
        with transport.round():
            assert transport.send(message, Recipient(ADDRESSES[0], Channel.EMAIL)).ok
            server.stop()  # the relay restarts: the kept connection is dead
            server.start()
            assert transport.send(message, Recipient(ADDRESSES[1], Channel.EMAIL)).ok
    finally:
        server.stop()
    assert received(server) == ADDRESSES[:2] and len(set(server.peers)) == 2
