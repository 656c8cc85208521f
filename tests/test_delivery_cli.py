"""`watchdog send-test`, end to end: a real process, the real SMTP server and HTTPS receiver."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from watchdog.casestore import Worker


def send_test(to: str, *, smtp_port: int, tmp_path, database_url: str | None = None,
              verify_tls: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    env.update({
        "WATCHDOG_SMTP__HOST": "127.0.0.1",
        "WATCHDOG_SMTP__PORT": str(smtp_port),
        "WATCHDOG_SMTP__TIMEOUT_SECONDS": "5",
        "WATCHDOG_DELIVERY__TEAMS_VERIFY_TLS": "true" if verify_tls else "false",
        "WATCHDOG_MUNICIPALITY": "Ishøj Kommune",
        "PYTHONWARNINGS": "ignore",
    })
    args = [sys.executable, "-m", "watchdog"]
    if database_url:
        args += ["--database-url", database_url]
    return subprocess.run([*args, "send-test", "--to", to], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60, check=False)


def test_send_test_to_an_email_address_delivers_a_test_message_and_says_so(smtp_server, tmp_path):
    proc = send_test("anne@kommune.example.dk", smtp_port=smtp_server.port, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("email anne@kommune.example.dk: sent")
    [mail] = smtp_server.messages
    assert mail.message["Subject"] == "Testbesked fra watchdog (Ishøj Kommune)"
    assert "testbesked" in mail.text


def test_send_test_to_a_worker_uses_their_email_and_their_teams_workflow(
        smtp_server, teams_receiver, session, database_url, tmp_path):
    session.add(Worker(ext_id="w-anne", name="Anne Holm", email="anne@kommune.example.dk",
                       teams_workflow_url=teams_receiver.url))
    session.commit()
    proc = send_test("w-anne", smtp_port=smtp_server.port, tmp_path=tmp_path, database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("email anne@kommune.example.dk: sent")
    assert lines[1].startswith("teams workflows://127.0.0.1:")
    assert "accepted (not proof that it was read)" in lines[1]
    assert teams_receiver.signature not in proc.stdout + proc.stderr
    assert len(smtp_server.messages) == 1
    assert teams_receiver.posts[0].card["body"][0]["text"].startswith("Testbesked fra watchdog")


def test_send_test_reports_each_channel_and_exits_1_when_one_fails(
        smtp_server, teams_receiver, session, database_url, tmp_path):
    session.add(Worker(ext_id="w-bo", name="Bo", email="bo@kommune.example.dk",
                       teams_workflow_url=teams_receiver.url))
    session.commit()
    teams_receiver.status = 404
    proc = send_test("w-bo", smtp_port=smtp_server.port, tmp_path=tmp_path, database_url=database_url)
    assert proc.returncode == 1
    assert "email bo@kommune.example.dk: sent" in proc.stdout
    assert "FAILED (permanent)" in proc.stderr and "error=404" in proc.stderr
    assert teams_receiver.signature not in proc.stderr


def test_send_test_with_the_smtp_server_down_fails_transiently_with_the_reason(smtp_server, tmp_path):
    smtp_server.stop()
    proc = send_test("anne@kommune.example.dk", smtp_port=smtp_server.port, tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "FAILED (transient)" in proc.stderr and "Connection refused" in proc.stderr


def test_send_test_to_a_workflow_url_posts_a_card(smtp_server, teams_receiver, tmp_path):
    proc = send_test(teams_receiver.url, smtp_port=smtp_server.port, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(teams_receiver.posts) == 1
    assert smtp_server.messages == []


@pytest.mark.parametrize(("to", "message"), [
    ("w-nobody", "no worker with ext_id 'w-nobody'"),
    ("mailto://x@y.dk", "plain email address"),
])
def test_send_test_to_an_unknown_recipient_is_one_clear_line(smtp_server, database_url, engine, tmp_path,
                                                              to, message):
    proc = send_test(to, smtp_port=smtp_server.port, tmp_path=tmp_path, database_url=database_url)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
