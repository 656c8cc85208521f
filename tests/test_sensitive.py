"""CPR numbers however they are written: refused at intake, caught by the net on the way out.

Every disguise from issue 12 (other dashes, invisible characters, '/' and dots, fullwidth digits,
a URL-escaped link, a worker's and a team's name) is tried twice: imported (refused, by record
and field) and put straight into the store as if it predated the check (then delivered through
the real SMTP server: the offending alert dies alone, the operators are told without the number,
and everything else arrives).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from conftest import at
from fixtures_servers import settings_for
from test_alerts_e2e import ANNE, CARL, LISE, OPS, Town, deadline_mails, rounds
from watchdog import outbox
from watchdog.casestore import Absence, Team, Worker, WorkerRole
from watchdog.delivery import Transport
from watchdog.errors import Problem, ValidationFailed
from watchdog.intake.parsing import read_files
from watchdog.intake.schemas import CaseIn, TeamIn, WorkerIn
from watchdog.intake.upsert import import_records
from watchdog.outbox import Alert, AlertKind, AlertState
from watchdog.render import AlertItem, item_sensitive
from watchdog.sensitive import find_cpr, normalize, redact
from watchdog.settings import load_settings

# The case references of the issue, each hiding 010190-1234.
DISGUISED_REFS = {
    "non-breaking hyphen U+2011": "S-010190\u20111234",
    "en dash U+2013": "S-010190\u20131234",
    "minus sign U+2212": "S-010190\u22121234",
    "zero-width space": "S-0101\u200b90-1234",
    "soft hyphen": "S-010190\u00ad1234",
    "slash": "S-010190/1234",
    "dots": "S-01.01.90.1234",
    "fullwidth digits": "S-\uff10\uff11\uff10\uff11\uff19\uff10-\uff11\uff12\uff13\uff14",
    "escaped slash": "S%2F0101901234",
}
DISGUISED_LINK = "https://sag.kommune.example.dk/sag?id=7&cpr=010190%2D1234"
DISGUISED_WORKER = "Sagsbehandler 010190\u20131234"
DISGUISED_TEAM = "Team 010190\u20131234"
NOW = at("2025-06-04T09:00")


def mail_blob(mail) -> str:
    return "\n".join([str(mail.message["Subject"]), mail.text, mail.html])


def assert_never_left(smtp_server) -> None:
    for mail in smtp_server.messages:
        blob = normalize(mail_blob(mail))
        assert find_cpr(blob) == [] and "010190" not in blob, blob


@pytest.mark.parametrize("text", [*DISGUISED_REFS.values(), DISGUISED_LINK, DISGUISED_WORKER, DISGUISED_TEAM,
                                  "010190 - 1234", "&#48;10190-1234", "010190%252D1234"])
def test_every_disguise_of_a_cpr_number_is_seen_through(text):
    assert len(find_cpr(text)) == 1


@pytest.mark.parametrize("text", ["S-2024-0012", "01-04-2024 kl. 00:30", "03-12-2026 12:00", "01.12.2026",
                                  "tlf. 12 34 56 78", "Søren Ærø", "50% af sagerne", "https://x.dk/sag/S-2024-0001",
                                  "321390-1234", "alert 4401901234567"])
def test_dates_times_case_numbers_and_danish_names_are_not_mistaken_for_cpr_numbers(text):
    assert find_cpr(text) == []


def test_an_error_message_never_repeats_a_cpr_number_but_keeps_everything_else():
    problem = Problem("cases.csv", "3", "opened_at", "'S-010190\u20131234' is not a time")
    assert "1234" not in problem.reason and "is not a time" in problem.reason
    assert str(problem).startswith("cases.csv, record 3, field 'opened_at': ")
    assert redact("nothing to hide 03-12-2026") == "nothing to hide 03-12-2026"


@pytest.mark.parametrize("name", list(DISGUISED_REFS))
def test_the_input_models_refuse_every_disguised_case_reference(name):
    with pytest.raises(ValueError, match="looks like a CPR number"):
        CaseIn.model_validate({"ext_id": DISGUISED_REFS[name], "team": "T1", "opened_at": "2025-01-02T10:00Z"})


def test_the_input_models_refuse_a_disguised_link_worker_name_and_team_name():
    with pytest.raises(ValueError, match="looks like a CPR number"):
        CaseIn.model_validate({"ext_id": "S-1", "team": "T1", "opened_at": "2025-01-02T10:00Z",
                               "link": DISGUISED_LINK})
    with pytest.raises(ValueError, match="looks like a CPR number"):
        WorkerIn.model_validate({"ext_id": "W1", "name": DISGUISED_WORKER, "email": "a@kommune.dk"})
    with pytest.raises(ValueError, match="looks like a CPR number"):
        TeamIn.model_validate({"ext_id": "T1", "name": DISGUISED_TEAM})


def test_an_import_refuses_every_disguise_by_record_and_field_and_stores_nothing(engine, tmp_path):
    teams = tmp_path / "teams.csv"
    teams.write_text(f"ext_id;name\nT1;Team Nord\nT2;{DISGUISED_TEAM}\n", encoding="utf-8")
    workers = tmp_path / "workers.csv"
    workers.write_text(f"ext_id;name;email;team\nW1;{DISGUISED_WORKER};a@kommune.dk;T1\n", encoding="utf-8")
    cases = tmp_path / "cases.csv"
    rows = [f"{ref};T1;02-01-2025 10:00;" for ref in DISGUISED_REFS.values()]
    rows.append(f"S-9;T1;02-01-2025 10:00;{DISGUISED_LINK}")
    cases.write_text("ext_id;team;opened_at;link\n" + "\n".join(rows) + "\n", encoding="utf-8")
    records, file_problems = read_files([teams, workers, cases])
    with pytest.raises(ValidationFailed) as caught:
        import_records(engine, records, now=NOW, settings=load_settings(None), file_problems=file_problems)
    got = {(p.source, p.record, p.field) for p in caught.value.problems}
    expected = {("teams.csv", "3", "name"), ("workers.csv", "2", "name")}
    expected |= {("cases.csv", str(n), "ext_id") for n in range(2, 2 + len(DISGUISED_REFS))}
    expected |= {("cases.csv", str(2 + len(DISGUISED_REFS)), "link")}
    assert got == expected
    for problem in caught.value.problems:
        assert "CPR" in problem.reason and "010190" not in normalize(str(problem))
    with Session(engine) as s:
        assert s.exec(select(Team)).all() == []


def test_a_case_reference_outside_the_configured_format_is_refused_without_repeating_it(engine, tmp_path):
    settings = load_settings(None, intake={"case_ref_pattern": r"S-\d{4}-\d{4}"})
    teams = tmp_path / "teams.csv"
    teams.write_text("ext_id;name\nT1;Team Nord\n", encoding="utf-8")
    cases = tmp_path / "cases.csv"
    cases.write_text("ext_id;team;opened_at\nS-2024-0001;T1;02-01-2025 10:00\nAnna Hansen;T1;02-01-2025 10:00\n",
                     encoding="utf-8")
    notes = tmp_path / "notifications.csv"
    notes.write_text("ext_id;case;received_at\nU-1;Anna Hansen;02-01-2025 10:00\n", encoding="utf-8")
    records, file_problems = read_files([teams, cases, notes])
    with pytest.raises(ValidationFailed) as caught:
        import_records(engine, records, now=NOW, settings=settings, file_problems=file_problems)
    refused = [p for p in caught.value.problems if "case-number format" in p.reason]
    assert {(p.source, p.record, p.field) for p in refused} == {("cases.csv", "3", "ext_id"),
                                                                 ("notifications.csv", "2", "case")}
    assert all("Anna" not in str(p) for p in caught.value.problems)
    # Unset (the default), any reference is taken.
    result = import_records(engine, read_files([teams, cases])[0], now=NOW, settings=load_settings(None))
    assert result.counts["cases"].created == 2


def test_an_invalid_case_ref_pattern_is_refused_at_start_up():
    from watchdog.errors import ConfigError

    with pytest.raises(ConfigError, match="case_ref_pattern"):
        load_settings(None, intake={"case_ref_pattern": "S-(\\d+"})


def test_one_item_of_a_grouped_message_is_judged_on_its_own():
    clean = AlertItem(alert_id=1, kind=AlertKind.WARNING, stage="before_7d", duty="plan", regime="bl",
                      citation="BL § 91", case_ref="S-1", case_link="https://x.dk/sag/S-1", due=NOW,
                      status="open", municipal_policy=False)
    assert not item_sensitive(clean)
    from dataclasses import replace

    assert item_sensitive(replace(clean, case_link="https://x.dk/sag/S%2F0101901234"))
    assert item_sensitive(replace(clean, responsible_name=DISGUISED_WORKER))


def test_stored_disguises_are_held_back_one_alert_at_a_time_and_the_rest_is_delivered(
        engine, session, smtp_server):
    """Issue 12 points 4 and 5: one real SMTP round with every disguise already in the store."""
    town = Town(session)
    town.investigation("S-1001")
    town.investigation("S-1002")
    offending = [town.investigation(ref) for ref in DISGUISED_REFS.values()]
    linked = town.investigation("S-1003")
    linked.link = DISGUISED_LINK
    offending.append(linked)
    town.workers["W3"].name = DISGUISED_WORKER  # Carl: the greeting
    town.investigation("S-2001", worker="W3")
    town.workers["W2"].name = DISGUISED_WORKER  # Bo, absent: his case goes to Lise, naming him
    town.investigation("S-3001", worker="W2")
    session.add(Absence(ext_id="A1", worker_id=town.workers["W2"].id, starts_on=date(2025, 6, 2),
                        ends_on=date(2025, 6, 13)))
    town.team.name = DISGUISED_TEAM  # Lise's weekly digest names the team
    session.commit()
    settings = settings_for(smtp_server, delivery={"ops_urls": [f"mailto://{OPS}"]})
    transport = Transport(settings)
    rounds(engine, settings, transport, at("2025-03-04T12:00"), NOW, NOW)

    # Anne: one message with the two clean cases, none of the others.
    (to_anne,) = smtp_server.to(ANNE)
    assert "S-1001" in to_anne.text and "S-1002" in to_anne.text and "S-1003" not in to_anne.text
    # Carl: his warning arrives, greeted without the name.
    (to_carl,) = smtp_server.to(CARL)
    assert "S-2001" in to_carl.text and "Sagsbehandler" not in to_carl.text
    # Lise: Bo's warning arrives, without his name.
    (to_lise,) = deadline_mails(session, smtp_server, LISE)
    assert "S-3001" in to_lise.text and "Sagsbehandler:" not in to_lise.text
    # Every offending alert is dead alone, with a reason that does not repeat the number.
    session.expire_all()
    offending_ids = {c.id for c in offending}
    from watchdog.deadlines import Deadline

    dead = session.exec(select(Alert).join(Deadline, Deadline.id == Alert.deadline_id)
                        .where(Deadline.case_id.in_(offending_ids))).all()
    assert len(dead) == len(offending)
    assert {a.state for a in dead} == {AlertState.DEAD}
    assert all("CPR" in a.last_error and find_cpr(a.last_error) == [] for a in dead)
    sent = session.exec(select(Alert).where(Alert.deadline_id.is_not(None), Alert.state == AlertState.SENT)).all()
    assert len(sent) == 4
    # The operators hear about every one of them, without the number.
    (to_ops,) = smtp_server.to(OPS)
    assert all(f"alert {a.id}" in to_ops.text for a in dead)
    # Lise's digest names the team: it is held back, so nothing with the number reaches her (with
    # a plain team name the same rounds send her two digests).
    assert not any(a.kind == AlertKind.DIGEST for a in session.exec(select(Alert)).all())
    assert_never_left(smtp_server)


def test_the_transport_net_refuses_a_prerendered_payload_that_hides_a_number(engine, session, smtp_server):
    settings = settings_for(smtp_server)
    payload = {"subject": "Oversigt", "text": f"Sag {DISGUISED_REFS['soft hyphen']} mangler"}
    session.add(Worker(ext_id="L9", name="Leder", email=LISE, role=WorkerRole.LEADER))
    session.commit()
    outbox.enqueue(session, [outbox.NewAlert(key="digest:x", kind=AlertKind.DIGEST, stage="weekly",
                                             recipient_address=LISE, channel=outbox.Channel.EMAIL,
                                             send_after=NOW, payload=payload)], now=NOW)
    session.commit()
    from watchdog import delivery_round

    report = delivery_round.deliver(engine, settings, now=NOW, transport=Transport(settings), worker_name="t")
    assert report.dead == 1 and smtp_server.messages == []


def test_the_example_files_hold_nothing_the_net_would_refuse():
    examples = Path(__file__).resolve().parents[1] / "examples"
    for path in sorted(p for p in examples.rglob("*") if p.is_file()):
        assert find_cpr(path.read_text(encoding="utf-8-sig")) == [], path


def test_the_readme_example_of_a_case_number_format_works_as_printed(tmp_path):
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Case-number format.**"):]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    config = tmp_path / "watchdog.toml"
    config.write_text(block, encoding="utf-8")
    pattern = re.compile(load_settings(config).intake.case_ref_pattern)
    assert pattern.fullmatch("S-2024-0001") and not pattern.fullmatch("Anna Hansen")
