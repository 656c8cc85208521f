"""The demo municipality: deterministic, at a real municipality's scale, and free of sensitive data."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime

from sqlmodel import func, select

from watchdog.casestore import Case, Worker, WorkerRole
from watchdog.demo_data import Scale, generate, populate
from watchdog.mailsink import MailSink

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _fingerprint(m):
    return [(c.ext_id, c.opened_at, m.ref(c, "worker").ext_id) for c in m.cases] + \
           [(n.ext_id, n.received_at, n.assessed_at) for n in m.notifications]


def test_the_same_seed_gives_the_same_municipality():
    assert _fingerprint(generate(7, NOW)) == _fingerprint(generate(7, NOW))
    assert _fingerprint(generate(7, NOW)) != _fingerprint(generate(8, NOW))


def test_the_municipality_has_a_real_municipalitys_scale_and_mix(session):
    counts = populate(session, generate(3, NOW))
    session.commit()
    assert counts["cases"] == 900
    caseworkers = session.exec(select(Worker).where(Worker.role == WorkerRole.CASEWORKER)).all()
    assert len(caseworkers) == 32
    assert 20 <= sum(w.fte for w in caseworkers) <= 30  # part-time posts, as in the memo
    leaders = session.exec(select(Worker).where(Worker.role == WorkerRole.LEADER)).all()
    assert {w.team_id for w in leaders} == {w.team_id for w in caseworkers}
    assert session.exec(select(func.count()).select_from(Case)).one() == 900
    assert counts["investigations"] > 400 and counts["measures"] > 100
    # Both on-time and late work: some 24-hour assessments done, some not.
    m = generate(3, NOW)
    assessed = [n for n in m.notifications if n.assessed_at is not None]
    assert 0.8 * len(m.notifications) < len(assessed) < len(m.notifications)


def test_generated_rows_hold_no_cpr_numbers_or_child_names():
    from watchdog.casestore import Case as CaseTable

    assert not {"cpr", "cpr_number", "name", "child_name"} & set(CaseTable.model_fields)
    m = generate(5, NOW, Scale(cases=50, caseworkers=4))
    assert all(c.ext_id.startswith("S-") for c in m.cases)


def test_the_mail_sink_saves_each_message_received_over_smtp(tmp_path):
    with MailSink(tmp_path) as sink:
        with smtplib.SMTP(sink.host, sink.port) as client:
            client.sendmail("frister@x.dk", ["a@x.dk"], "Subject: 1\r\n\r\nen")
            client.sendmail("frister@x.dk", ["b@x.dk"], "Subject: 2\r\n\r\nto")
        saved = sink.saved
    assert [p.name for p in saved] == ["00001-a@x.dk.eml", "00002-b@x.dk.eml"]
    assert b"Subject: 2" in saved[1].read_bytes()


def test_the_demo_delivers_every_due_alert_over_real_smtp_without_sensitive_data(tmp_path):
    import email
    import email.policy

    from watchdog.demo import run_demo
    from watchdog.render import find_sensitive

    result = run_demo(out=tmp_path / "out", seed=11, now=NOW, scale=Scale(cases=150, caseworkers=6))
    assert result.rows["cases"] == 150
    assert sum(result.deadlines_by_status.values()) > 150
    assert result.deadlines_by_status["breached"] > 0 and result.deadlines_by_status["met"] > 0
    assert result.alerts_by_state["sent"] > 0
    assert set(result.alerts_by_state) <= {"sent", "accepted"}, result.alerts_by_state
    assert result.messages, "no message reached the SMTP server"
    recipients = []
    for path in result.messages:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if not msg["Subject"].startswith("Ugeoversigt"):  # the leaders' weekly digest comes apart
            recipients.append(msg["To"])
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "S-" in text  # the case reference is there
        assert find_sensitive(text) == [] and find_sensitive(html) == []
    assert len(recipients) == len(set(recipients)), "one grouped deadline message per recipient"


def test_the_demo_command_prints_a_summary(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "watchdog", "demo", "--seed", "4", "--cases", "80", "--caseworkers", "4",
         "--out", str(tmp_path / "d"), "--now", "2026-11-23T09:00"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "messages delivered over SMTP" in out.stdout
    assert "80 active cases" in out.stdout
    assert list((tmp_path / "d" / "mail").glob("*.eml"))


def test_a_past_period_of_the_demo_reports_at_once_under_the_demo_municipalitys_name(tmp_path):
    import subprocess
    import sys

    d = tmp_path / "d"
    out = subprocess.run(
        [sys.executable, "-m", "watchdog", "demo", "--seed", "4", "--cases", "80", "--caseworkers", "4",
         "--out", str(d), "--now", "2026-11-23T09:00"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"--config {d / 'watchdog.toml'}" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "watchdog", "--config", str(d / "watchdog.toml"), "report", "barometer",
         "--from", "2026-01-01", "--to", "2026-10-31", "--format", "csv"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    totals = [int(r.split(";")[4]) for r in out.stdout.splitlines()[1:] if r.split(";")[3] == "I alt"]
    assert sum(totals) > 20, out.stdout  # the demo's history counts at once, no --as-of needed
    assert out.stderr == ""  # every deadline of the period has its status
    out = subprocess.run(
        [sys.executable, "-m", "watchdog", "--config", str(d / "watchdog.toml"), "report", "barometer",
         "--from", "2026-01-01", "--to", "2026-10-31"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "Børnesagsbarometer – Demo Kommune" in out.stdout
