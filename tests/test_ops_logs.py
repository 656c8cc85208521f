"""Logs: JSON lines on request, and no secret in any log line, whatever the level."""

from __future__ import annotations

import io
import json
import logging

import pytest

from watchdog.ops.logs import SecretMasker, configure_logging, known_secrets
from watchdog.settings import load_settings

DB_PASSWORD = "Db-Pa55word-xyz"
SMTP_PASSWORD = "Smtp-Pa55word-xyz"
TEAMS_SIGNATURE = "TeamsSig0123456789abcdef"


@pytest.fixture
def secret_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load_settings(
        database_url=f"postgresql+psycopg://wd:{DB_PASSWORD}@db.internal/wd",
        smtp={"host": "smtp.example.dk", "mode": "starttls", "username": "wd", "password": SMTP_PASSWORD},
        delivery={"ops_urls": [f"workflows://prod.example.com:443/abc123/{TEAMS_SIGNATURE}?pa=yes"]},
        log_level="DEBUG", log_format="json",
    )


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("watchdog").level)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    logging.getLogger("watchdog").setLevel(saved[2])


def test_json_lines_carry_time_level_logger_message_and_extra_fields(secret_settings, restore_logging):
    out = io.StringIO()
    configure_logging(secret_settings, stream=out)
    log = logging.getLogger("watchdog.test")
    log.info("poll finished in %.1fs", 1.25, extra={"replica": "pod-1", "deadlines": 12})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("round failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "watchdog.test"
    assert first["message"] == "poll finished in 1.2s"
    assert first["replica"] == "pod-1" and first["deadlines"] == 12
    assert first["ts"].endswith("+00:00") and first["ts"][:4].isdigit()
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_configuring_twice_replaces_the_handler_instead_of_doubling_lines(secret_settings, restore_logging):
    out = io.StringIO()
    configure_logging(secret_settings, stream=io.StringIO())
    configure_logging(secret_settings, stream=out)
    logging.getLogger("watchdog.test").warning("once")
    assert out.getvalue().count("once") == 1


def test_every_secret_of_the_settings_is_known_to_the_masker(secret_settings):
    assert set(known_secrets(secret_settings)) >= {DB_PASSWORD, SMTP_PASSWORD, TEAMS_SIGNATURE}


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_logged_by_mistake_are_masked_in_both_formats(secret_settings, restore_logging, fmt):
    out = io.StringIO()
    configure_logging(secret_settings.model_copy(update={"log_format": fmt}), stream=out)
    log = logging.getLogger("watchdog.careless")
    log.debug("connecting to %s", secret_settings.database_url.get_secret_value())
    log.debug("smtp login", extra={"smtp_password": SMTP_PASSWORD})
    log.debug("ops url %s", secret_settings.delivery.ops_urls[0])
    try:
        raise ValueError(f"auth failed for password {SMTP_PASSWORD}")
    except ValueError:
        log.exception("send failed")
    text = out.getvalue()
    for secret in (DB_PASSWORD, SMTP_PASSWORD, TEAMS_SIGNATURE):
        assert secret not in text
    assert "postgresql+psycopg://wd:********@db.internal/wd" in text
    assert "workflows://prod.example.com:443/abc123/********" in text


@pytest.mark.parametrize("line, expected", [
    ("mailtos://alerts:hunter22@smtp.x.dk:587/a@x.dk", "mailtos://alerts:********@smtp.x.dk:587/a@x.dk"),
    ("post https://prod-1.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=S1G",
     "post https://prod-1.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=********"),
    ("workflows://host/wf/SIGNATURE?pa=yes", "workflows://host/wf/********?pa=yes"),
    ('{"password": "p4ss"}', '{"password": "********"}'),
    ("password=abc&user=x", "password=********&user=x"),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    ("http://host:8080/path@x", "http://host:8080/path@x"),
])
def test_secret_shaped_text_is_masked_even_when_the_secret_is_unknown(line, expected):
    assert SecretMasker()(line) == expected


def test_a_full_round_at_debug_in_json_never_logs_a_secret(engine, session, database_url, tmp_path):
    """`watchdog -v tick` with passwords and a Teams signature everywhere: none reaches the output."""
    import os
    import socket
    import subprocess
    import sys
    from datetime import UTC, datetime

    from aiosmtpd.controller import Controller

    from watchdog.db import is_sqlite
    from watchdog.outbox import AlertKind, Channel, NewAlert, enqueue

    class Sink:
        async def handle_DATA(self, server, session_, envelope):  # noqa: N802
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smtp = Controller(Sink(), hostname="127.0.0.1", port=port)
    smtp.start()
    url = database_url
    if not is_sqlite(url):  # local PostgreSQL trusts every password: put one in the URL
        url = url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
    now = datetime.now(UTC)
    enqueue(session, [NewAlert(key="secret-test", kind=AlertKind.TEST, stage="test",
                               recipient_address="cw@kommune.example.dk", channel=Channel.EMAIL, send_after=now,
                               payload={"subject": "Test", "text": "Test", "html": "<p>Test</p>", "card": {}})],
            now=now)
    session.commit()
    config = tmp_path / "wd.toml"
    config.write_text(f'''
log_level = "DEBUG"
log_format = "json"
[smtp]
host = "127.0.0.1"
port = {port}
username = "frister"
password = "{SMTP_PASSWORD}"
[delivery]
ops_urls = ["workflows://prod.example.com:443/abc123/{TEAMS_SIGNATURE}?pa=yes"]
[http]
heartbeat_url = "http://hb:{SMTP_PASSWORD}x@127.0.0.1:1/ping/{TEAMS_SIGNATURE}"
''')
    env = {**os.environ, "WATCHDOG_DATABASE_URL": url}
    env.pop("WATCHDOG_DEBUG", None)
    try:
        out = subprocess.run([sys.executable, "-m", "watchdog", "-v", "--config", str(config), "tick"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    finally:
        smtp.stop()
    text = out.stdout + out.stderr
    assert "delivery:" in out.stdout, text[-2000:]  # the round ran
    log_lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(log_lines) > 5  # DEBUG really was on
    for line in log_lines:
        json.loads(line)  # every log line is one JSON object
    for secret in (SMTP_PASSWORD, TEAMS_SIGNATURE) + (() if is_sqlite(url) else (DB_PASSWORD,)):
        assert secret not in text
