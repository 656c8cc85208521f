"""What a delivery round reads once instead of per message: Apprise's parse of the email URL
(per relay), and each recipient's last message (per claimed batch). Each must give what the
per-message read gave."""

from __future__ import annotations

from datetime import timedelta

import apprise
import pytest
from conftest import at
from sqlmodel import Session

from watchdog import delivery, outbox
from watchdog.casestore import Worker
from watchdog.message_context import BatchRows, last_message_at, last_messages_at
from watchdog.outbox import Alert, AlertKind, AlertState, Channel, NewAlert
from watchdog.settings import load_settings

NOW = at("2025-03-04T10:00")

ADDRESSES = ["anne.holm@kommune.example.dk", "a+b@kommune.example.dk", "søren.ærø@kommune.example.dk",
             "a%20b@kommune.example.dk", "UPPER@KOMMUNE.EXAMPLE.DK", "x@[127.0.0.1].dk"]


@pytest.mark.parametrize("smtp", [
    {"host": "127.0.0.1", "port": 2525, "mode": "plain"},
    {"host": "smtp.kommune.example.dk", "port": 587, "mode": "starttls", "username": "frister@kommune.example.dk",
     "password": "p%ss w+rd@1"},
    {"host": "::1", "port": 465, "mode": "ssl", "username": "u", "verify_tls": False},
])
def test_the_email_plugin_is_built_from_apprises_own_parse_of_each_recipients_url(smtp):
    transport = delivery.Transport(load_settings(None, database_url="sqlite://", smtp=smtp))
    for address in ADDRESSES:
        target = transport._email_target(address)
        assert isinstance(target, dict), "the parse of the relay's URL is reused"
        assert target == apprise.plugins.url_to_dict(transport.email_url(address))
        plugin = delivery._instantiate(target)
        assert plugin.targets == apprise.Apprise.instantiate(transport.email_url(address)).targets
    # Each send gets its own copy: filling one in leaves the next untouched.
    first = transport._email_target(ADDRESSES[0])
    first["qsd"]["from"] = "changed"
    assert transport._email_target(ADDRESSES[1])["qsd"]["from"] != "changed"


def _alert(key: str, *, address: str, channel=Channel.EMAIL, worker_id: int | None = None) -> NewAlert:
    return NewAlert(key=key, kind=AlertKind.TEST, stage="test", recipient_address=address, channel=channel,
                    send_after=NOW, recipient_worker_id=worker_id, payload={"subject": key})


def test_the_batch_reads_each_recipients_last_message_as_the_per_message_read_does(engine):
    with Session(engine) as session:
        anne = Worker(ext_id="w1", name="Anne", email="anne@kommune.example.dk")
        bo = Worker(ext_id="w2", name="Bo", email="bo@kommune.example.dk")
        session.add_all([anne, bo])
        session.commit()
        outbox.enqueue(session, [
            _alert("a-old", address="anne@kommune.example.dk", worker_id=anne.id),
            _alert("a-new", address="anne.other@kommune.example.dk", worker_id=anne.id),
            _alert("a-teams", address="https://teams.example/wf", channel=Channel.TEAMS, worker_id=anne.id),
            _alert("a-dead", address="anne@kommune.example.dk", worker_id=anne.id),
            _alert("ops-1", address="ops@kommune.example.dk"),
            _alert("bo-now", address="bo@kommune.example.dk", worker_id=bo.id),
            _alert("ops-2", address="ops2@kommune.example.dk"),
        ], now=NOW)
        session.commit()
        rows = {a.key: a for a in session.exec(outbox.select(Alert)).all()}
        for key, state, sent in [("a-old", AlertState.SENT, NOW - timedelta(days=3)),
                                 ("a-new", AlertState.SENT, NOW - timedelta(days=1)),
                                 ("a-teams", AlertState.ACCEPTED, NOW - timedelta(hours=2)),
                                 ("a-dead", AlertState.DEAD, NOW),
                                 ("ops-1", AlertState.SENT, NOW - timedelta(days=5))]:
            rows[key].state, rows[key].sent_at = state, sent
        session.commit()
        asked = [rows["a-dead"], rows["a-teams"], rows["ops-1"], rows["bo-now"], rows["ops-2"]]
        batch = last_messages_at(session, asked)
        read = BatchRows(deadlines={}, cases={}, workers={}, teams={}, last_messages=batch)
        for alert in asked:
            expected = last_message_at(session, worker_id=alert.recipient_worker_id,
                                       address=alert.recipient_address, channel=alert.channel)
            assert read.last_message(worker_id=alert.recipient_worker_id, address=alert.recipient_address,
                                     channel=alert.channel) == expected
        assert read.last_message(worker_id=anne.id, address="", channel=Channel.EMAIL) == NOW - timedelta(days=1)
        assert read.last_message(worker_id=bo.id, address="", channel=Channel.EMAIL) is None
        # A message of the batch recorded sent is seen by the next one to the same recipient.
        read.sent([rows["bo-now"]], at=NOW)
        assert read.last_message(worker_id=bo.id, address="", channel=Channel.EMAIL) == NOW
        read.sent([rows["a-dead"]], at=NOW - timedelta(days=9))  # never moves back
        assert read.last_message(worker_id=anne.id, address="", channel=Channel.EMAIL) == NOW - timedelta(days=1)
