"""Delivery through Apprise's real email and workflows code against a real SMTP server and HTTPS receiver."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from conftest import at
from fixtures_servers import settings_for

from watchdog.delivery import Recipient, SendResult, Transport
from watchdog.outbox import AlertKind, Channel
from watchdog.render import AlertItem, Message, render_alerts
from watchdog.rules.types import Duty, Regime, Status

NOW = at("2024-03-20 09:00")

# The test receiver's certificate is self-signed (delivery.teams_verify_tls = false).


def warning_message(*, case_ref="S-2024-0012", due=None, municipal_policy=False) -> Message:
    item = AlertItem(
        alert_id=1, kind=AlertKind.WARNING, stage="before_7d", duty=Duty.INVESTIGATION_4M, regime=Regime.BL,
        citation="BL § 20, stk. 3", case_ref=case_ref, case_link=f"https://sag.kommune.example.dk/sag/{case_ref}",
        due=due or at("2024-03-27 00:00"), status=Status.OPEN, municipal_policy=municipal_policy)
    return render_alerts([item], recipient_name="Anne Holm", now=NOW)


def email(address: str) -> Recipient:
    return Recipient(address, Channel.EMAIL)


# --- email ---------------------------------------------------------------------------------------

def test_an_email_arrives_as_html_with_a_plain_text_part_with_subject_and_sender(smtp_server):
    message = warning_message()
    result = Transport(settings_for(smtp_server)).send(message, email("anne.holm@kommune.example.dk"))

    assert result == SendResult(ok=True, detail=result.detail)
    assert "accepted" in result.detail
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["anne.holm@kommune.example.dk"]
    assert mail.message["Subject"] == message.subject
    assert mail.message["From"].addresses[0].addr_spec == "frister@kommune.example.dk"
    assert mail.message["From"].addresses[0].display_name == "Frister"
    assert mail.message.get_content_type() == "multipart/alternative"
    for part in (mail.text, mail.html):
        assert "S-2024-0012" in part
        assert "udgangen af 26-03-2024" in part
        assert "https://sag.kommune.example.dk/sag/S-2024-0012" in part
    assert '<th scope="col">' in mail.html and "<" not in mail.text
    # The plain part is the text render wrote to be read on its own, not a conversion of the HTML.
    assert mail.text.replace("\r\n", "\n").strip() == message.text.strip()


def test_each_recipient_gets_their_own_message_and_their_own_result(smtp_server):
    smtp_server.reject_addresses["gone@kommune.example.dk"] = "550 5.1.1 No such user"
    transport = Transport(settings_for(smtp_server))
    message = warning_message()
    ok = transport.send(message, email("anne@kommune.example.dk"))
    refused = transport.send(message, email("gone@kommune.example.dk"))
    also_ok = transport.send(message, email("bo@kommune.example.dk"))

    assert ok.ok and also_ok.ok
    assert not refused.ok and refused.permanent
    assert [m.rcpt_tos for m in smtp_server.messages] == [["anne@kommune.example.dk"], ["bo@kommune.example.dk"]]


def test_sending_twice_in_a_row_is_not_throttled_by_apprise(smtp_server):
    transport = Transport(settings_for(smtp_server))
    started = time.monotonic()
    for n in range(3):
        assert transport.send(warning_message(), email(f"w{n}@kommune.example.dk")).ok
    # Apprise throttles a reused plugin to one send per 5.5 s; three sends must not take 11 s.
    assert time.monotonic() - started < 5
    assert len(smtp_server.messages) == 3


def test_an_smtp_server_that_is_down_gives_a_transient_failure_with_the_error_text(smtp_server):
    transport = Transport(settings_for(smtp_server))
    smtp_server.stop()
    result = transport.send(warning_message(), email("anne@kommune.example.dk"))
    assert not result.ok and not result.permanent
    assert "Connection refused" in result.detail

    smtp_server.start()  # the same port again: the next attempt goes through
    assert transport.send(warning_message(), email("anne@kommune.example.dk")).ok
    assert len(smtp_server.messages) == 1


def test_a_5xx_rejection_of_the_recipient_is_permanent_and_says_why(smtp_server):
    smtp_server.reject_rcpt = "550 5.1.1 Mailbox does not exist"
    result = Transport(settings_for(smtp_server)).send(warning_message(), email("nobody@kommune.example.dk"))
    assert not result.ok and result.permanent
    assert "550" in result.detail and "Mailbox does not exist" in result.detail
    assert smtp_server.messages == []


def test_a_4xx_rejection_is_transient(smtp_server):
    smtp_server.reject_rcpt = "451 4.3.0 Greylisted, try again later"
    result = Transport(settings_for(smtp_server)).send(warning_message(), email("anne@kommune.example.dk"))
    assert not result.ok and not result.permanent
    assert "451" in result.detail


@pytest.mark.parametrize("address", ["anne", "anne@", "@kommune.dk", "anne holm@kommune.dk", "a@b@c.dk", ""])
def test_a_malformed_email_address_is_a_permanent_failure_and_nothing_is_sent(smtp_server, address):
    result = Transport(settings_for(smtp_server)).send(warning_message(), email(address))
    assert not result.ok and result.permanent
    assert "malformed" in result.detail
    assert smtp_server.messages == []


def test_the_smtp_password_never_appears_in_the_result(smtp_server):
    # The test server offers no AUTH, so Apprise's login fails: the error must not carry the secret.
    settings = settings_for(smtp_server, smtp={"username": "frister", "password": "Hemmelig-Kode-42"})
    transport = Transport(settings)
    assert "Hemmelig-Kode-42" in transport.email_url("a@kommune.example.dk")
    result = transport.send(warning_message(), email("anne@kommune.example.dk"))
    assert not result.ok
    assert "Hemmelig-Kode-42" not in result.detail and "Hemmelig" not in result.detail


def test_the_email_url_pins_the_server_and_the_tls_mode():
    plain = Transport(settings_for(None, smtp={"host": "127.0.0.1", "port": 2525}))
    tls = Transport(settings_for(None, smtp={"host": "smtp.kommune.dk", "port": 587, "mode": "starttls",
                                             "username": "frister", "password": "p@ss/w:rd"}))
    ssl = Transport(settings_for(None, smtp={"host": "smtp.kommune.dk", "port": 465, "mode": "ssl"}))
    assert plain.email_url("a@x.dk").startswith("mailto://127.0.0.1:2525/?to=a@x.dk&")
    assert "smtp=127.0.0.1" in plain.email_url("a@x.dk")
    url = tls.email_url("a@x.dk")
    assert url.startswith("mailtos://frister:p%40ss%2Fw%3Ard@smtp.kommune.dk:587/")
    assert "mode=starttls" in url
    assert "mode=ssl" in ssl.email_url("a@x.dk")


def test_a_message_with_a_cpr_number_is_refused_before_it_leaves(smtp_server):
    message = warning_message(case_ref="010190-1234")
    result = Transport(settings_for(smtp_server)).send(message, email("anne@kommune.example.dk"))
    assert not result.ok and result.permanent
    assert "CPR" in result.detail and "010190" not in result.detail
    assert smtp_server.messages == []


def test_apprise_debug_lines_do_not_leak_into_the_application_log(smtp_server, caplog):
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("apprise")
    level_before = logger.level
    smtp_server.stop()
    result = Transport(settings_for(smtp_server)).send(warning_message(), email("anne@kommune.example.dk"))
    assert "Socket Exception" in result.detail  # captured at DEBUG for the result …
    apprise_records = [r for r in caplog.records if r.name == "apprise"]
    assert apprise_records  # … the warning still reaches the log …
    assert all(r.levelno >= logging.INFO for r in apprise_records)  # … the debug lines do not
    assert logger.level == level_before


def test_within_a_round_the_apprise_logger_is_lowered_once_and_each_send_keeps_its_own_detail(
        smtp_server, caplog):
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("apprise")
    level_before = logger.level
    transport = Transport(settings_for(smtp_server))
    with transport.round():
        assert logger.level == logging.DEBUG
        sent = transport.send(warning_message(), email("anne@kommune.example.dk"))
        logging.getLogger("apprise").debug("between sends: not for the application log")
        smtp_server.stop()
        failed = transport.send(warning_message(), email("anne@kommune.example.dk"))
        assert logger.level == logging.DEBUG
    assert sent.ok and "Socket Exception" not in sent.detail
    assert not failed.ok and "Socket Exception" in failed.detail
    apprise_records = [r for r in caplog.records if r.name == "apprise"]
    assert apprise_records and all(r.levelno >= logging.INFO for r in apprise_records)
    assert logger.level == level_before


# --- Teams -----------------------------------------------------------------------------------------

def teams(url: str) -> Recipient:
    return Recipient(url, Channel.TEAMS)


def test_the_adaptive_card_arrives_at_the_workflow_with_case_reference_and_due_time(smtp_server, teams_receiver):
    message = warning_message(municipal_policy=True)
    result = Transport(settings_for(smtp_server)).send(message, teams(teams_receiver.url))

    assert result.ok and result.accepted_only
    assert "accepted" in result.detail and teams_receiver.signature not in result.detail
    [post] = teams_receiver.posts
    assert post.path == f"/workflows/{teams_receiver.workflow}/triggers/manual/paths/invoke"
    assert post.body["type"] == "message"
    attachment = post.body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert post.card == message.card  # our card, exactly, not Apprise's generic one
    assert post.card["version"] == "1.4"
    card_text = json.dumps(post.card, ensure_ascii=False)
    assert "S-2024-0012" in card_text and "udgangen af 26-03-2024" in card_text
    assert "kommunal frist" in card_text


def test_the_native_https_workflow_url_works_too(smtp_server, teams_receiver, monkeypatch):
    teams_receiver.resolve_native_host(monkeypatch)
    result = Transport(settings_for(smtp_server)).send(warning_message(), teams(teams_receiver.native_url))
    assert result.ok and result.accepted_only
    assert len(teams_receiver.posts) == 1


def test_a_200_answer_is_also_only_accepted(smtp_server, teams_receiver):
    teams_receiver.status = 200
    result = Transport(settings_for(smtp_server)).send(warning_message(), teams(teams_receiver.url))
    assert result.ok and result.accepted_only


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False), (408, False),
                                                   (404, True), (400, True), (403, True)])
def test_an_http_error_from_the_workflow_is_classified(smtp_server, teams_receiver, status, permanent):
    teams_receiver.status = status
    result = Transport(settings_for(smtp_server)).send(warning_message(), teams(teams_receiver.url))
    assert not result.ok
    assert result.permanent is permanent
    assert f"error={status}" in result.detail
    assert teams_receiver.signature not in result.detail


def test_a_wrong_signature_is_permanent_and_the_signature_is_masked(smtp_server, teams_receiver):
    url = teams_receiver.url_for(signature="Wr0ngSignatureValue")
    result = Transport(settings_for(smtp_server)).send(warning_message(), teams(url))
    assert not result.ok and result.permanent
    assert "error=401" in result.detail
    assert "Wr0ngSignatureValue" not in result.detail


def test_an_unreachable_workflow_is_transient_and_the_signature_stays_masked(smtp_server, teams_receiver):
    from fixtures_servers import free_port

    url = f"workflows://127.0.0.1:{free_port()}/{teams_receiver.workflow}/{teams_receiver.signature}?verify=no"
    result = Transport(settings_for(smtp_server)).send(warning_message(), teams(url))
    assert not result.ok and not result.permanent
    assert "Connection refused" in result.detail
    assert teams_receiver.signature not in result.detail and "sig=********" in result.detail


def test_certificates_are_checked_unless_the_setting_turns_it_off(smtp_server, teams_receiver):
    checked = Transport(settings_for(smtp_server, delivery={"teams_verify_tls": True}))
    url = teams_receiver.url.replace("?verify=no", "")
    result = checked.send(warning_message(), teams(url))
    assert not result.ok and not result.permanent
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail or "certificate" in result.detail.lower()
    assert teams_receiver.posts == []


@pytest.mark.parametrize("url", [
    "msteams://T1/T2/T3",
    "https://kommune.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi",
    "workflows://127.0.0.1/",
    "https://example.com/not-a-workflow",
])
def test_a_malformed_or_retired_teams_url_is_a_permanent_failure(smtp_server, url):
    result = Transport(settings_for(smtp_server)).send(warning_message(), teams(url))
    assert not result.ok and result.permanent


def test_a_message_without_a_card_gets_a_simple_card(smtp_server, teams_receiver):
    message = Message(subject="Ugeoversigt", text="Ingen overskredne frister.", html="", card={})
    assert Transport(settings_for(smtp_server)).send(message, teams(teams_receiver.url)).ok
    assert teams_receiver.posts[0].card["body"][0]["text"] == "Ugeoversigt"


def test_a_teams_failure_does_not_stop_the_email_to_the_same_worker(smtp_server, teams_receiver):
    teams_receiver.status = 500
    transport = Transport(settings_for(smtp_server))
    message = warning_message(due=NOW + timedelta(days=3))
    results = [transport.send(message, teams(teams_receiver.url)),
               transport.send(message, email("anne@kommune.example.dk"))]
    assert [r.ok for r in results] == [False, True]
    assert len(smtp_server.messages) == 1


# --- TLS to the relay ------------------------------------------------------------------------------

def test_starttls_mode_speaks_tls_and_checks_the_certificate(smtp_server_starttls):
    server = smtp_server_starttls
    checked = Transport(settings_for(server, smtp={"mode": "starttls"}))
    refused = checked.send(warning_message(), email("anne@kommune.example.dk"))
    assert not refused.ok and not refused.permanent  # a self-signed certificate is not trusted
    assert "CERTIFICATE_VERIFY_FAILED" in refused.detail

    unchecked = Transport(settings_for(server, smtp={"mode": "starttls", "verify_tls": False}))
    assert unchecked.send(warning_message(), email("anne@kommune.example.dk")).ok
    assert len(server.messages) == 1


def test_plain_mode_against_a_relay_that_requires_starttls_fails_with_its_reply(smtp_server_starttls):
    result = Transport(settings_for(smtp_server_starttls)).send(warning_message(), email("anne@kommune.example.dk"))
    assert not result.ok
    assert "STARTTLS" in result.detail
    assert smtp_server_starttls.messages == []


def test_ssl_mode_speaks_tls_from_the_first_byte(smtp_server_ssl):
    transport = Transport(settings_for(smtp_server_ssl, smtp={"mode": "ssl", "verify_tls": False}))
    assert transport.send(warning_message(), email("anne@kommune.example.dk")).ok
    assert len(smtp_server_ssl.messages) == 1


def test_the_tls_context_is_made_once_per_process_not_once_per_message(smtp_server_starttls, monkeypatch):
    import ssl

    from watchdog import apprise_email

    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **kw: made.append(1) or real(*a, **kw))
    monkeypatch.setattr(apprise_email.SharedTlsContexts, "_contexts", {})
    transport = Transport(settings_for(smtp_server_starttls, smtp={"mode": "starttls", "verify_tls": False}))
    for n in range(5):
        assert transport.send(warning_message(), email(f"anne{n}@kommune.example.dk")).ok
    assert len(smtp_server_starttls.messages) == 5
    assert len(made) == 1  # before: one context, and one read of the CA bundle, per message


def test_a_shared_unverified_context_never_weakens_a_later_verified_send(smtp_server_starttls):
    unchecked = Transport(settings_for(smtp_server_starttls, smtp={"mode": "starttls", "verify_tls": False}))
    assert unchecked.send(warning_message(), email("anne@kommune.example.dk")).ok
    checked = Transport(settings_for(smtp_server_starttls, smtp={"mode": "starttls"}))
    refused = checked.send(warning_message(), email("anne@kommune.example.dk"))
    assert not refused.ok and "CERTIFICATE_VERIFY_FAILED" in refused.detail
    assert unchecked.send(warning_message(), email("anne@kommune.example.dk")).ok
    assert len(smtp_server_starttls.messages) == 2


def test_error_text_from_apprise_is_scrubbed_of_passwords_and_signatures():
    from watchdog.delivery import _detail

    records = [(logging.WARNING, "login frister:Hemmelig-Kode-42 refused"),
               (logging.DEBUG, "Socket Exception: url /workflows/x/invoke?api-version=1&sig=AbC123xyz (refused)"),
               (logging.DEBUG, "Workflows Payload: {'card': 'not an error'}")]
    detail = _detail(records, ["Hemmelig-Kode-42"])
    assert "Hemmelig-Kode-42" not in detail and "AbC123xyz" not in detail
    assert "sig=********" in detail and "refused" in detail
    assert "Payload" not in detail  # message content is not error text


@pytest.mark.parametrize("subject", [
    "Frist om 7 dage: børnefaglig undersøgelse, sag S-2024-0012",
    "Påmindelse — Ærø, Åbenrå og Næstved: 3 frister overskredet i teamet for børn og unge (BL § 20, stk. 3)",
    "Frist   i  morgen:\tsag\nS-2024-0012 ø",  # whitespace collapsed, as Apprise does
    "ø" * 60,  # its encoding would be cut by Apprise's 250-character title: Apprise encodes it
])
def test_a_danish_subject_goes_out_rfc_2047_encoded_and_reads_back_exactly(smtp_server, subject):
    from dataclasses import replace

    message = replace(warning_message(), subject=subject)
    assert Transport(settings_for(smtp_server)).send(message, email("anne@kommune.example.dk")).ok
    [mail] = smtp_server.messages
    assert mail.message["Subject"] == " ".join(subject.split())
    [raw] = [value for name, value in mail.message.raw_items() if name == "Subject"]
    assert raw.isascii() and "=?utf-8?" in raw.lower()
    if set(subject) == {"ø"}:
        return  # Apprise's own encoding: one word, one line (it writes headers unfolded)
    lines = f"Subject: {raw}".replace("\r\n", "\n").split("\n")
    assert all(len(line) <= 76 for line in lines)
    for word in raw.split():
        assert len(word) <= 75  # RFC 2047's limit for one encoded-word


def test_the_encoded_subject_is_q_encoded_words_within_the_rfc_2047_limits():
    from email.header import decode_header, make_header

    from watchdog.apprise_email import encoded_subject

    subject = "Påmindelse — Ærø, Åbenrå og Næstved: 3 frister overskredet i teamet for børn og unge"
    encoded = encoded_subject(subject, max_length=250)
    words = encoded.split(" ")
    assert len(words) > 1 and all(w.startswith("=?utf-8?q?") and w.endswith("?=") for w in words)
    assert len("Subject: " + words[0]) <= 76 and all(len(w) <= 75 for w in words)
    assert str(make_header(decode_header(encoded))) == subject
    assert encoded_subject("Frist i morgen", max_length=250) == "Frist i morgen"  # ASCII: Apprise's
    assert encoded_subject("ø" * 100, max_length=250) == "ø" * 100  # too long encoded: Apprise's
