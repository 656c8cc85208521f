"""Rendering: Danish wording, ordering, time left across DST, the CPR net. Pure: no I/O."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from conftest import at

from watchdog.outbox import AlertKind
from watchdog.render import (
    CARD_MAX_ITEMS,
    DUTY_NAMES_DA,
    AlertItem,
    Message,
    MessageContext,
    WorkerCount,
    describe_time_left,
    find_sensitive,
    message_from_payload,
    message_sensitive,
    message_to_payload,
    render_alerts,
    render_test_message,
)
from watchdog.rules.types import Duty, Regime, Status

NOW = at("2024-03-20 09:00")


def item(n: int = 1, *, due=None, kind=AlertKind.WARNING, duty=Duty.INVESTIGATION_4M, stage="before_7d",
         status=Status.OPEN, municipal_policy=False, responsible_name=None, case_ref=None,
         citation="BL § 20, stk. 3") -> AlertItem:
    ref = case_ref or f"S-2024-{n:04d}"
    return AlertItem(
        alert_id=n, kind=kind, stage=stage, duty=duty, regime=Regime.BL, citation=citation,
        case_ref=ref, case_link=f"https://sag.kommune.example.dk/sag/{ref}",
        due=due or NOW + timedelta(days=7), status=status, municipal_policy=municipal_policy,
        responsible_name=responsible_name,
    )


def all_text(message: Message) -> str:
    return "\n".join([message.subject, message.text, message.html, json.dumps(message.card, ensure_ascii=False)])


# --- one warning --------------------------------------------------------------------------------

def test_a_warning_names_the_duty_paragraph_local_due_time_time_left_and_link():
    m = render_alerts([item(12, due=at("2024-04-01 00:30"), duty=Duty.ASSESSMENT_24H,
                            citation="BL § 136")], recipient_name="Anne Holm", now=at("2024-03-31 20:00"))
    for form in (m.text, m.html):
        assert "S-2024-0012" in form
        assert DUTY_NAMES_DA[Duty.ASSESSMENT_24H] in form
        assert "BL § 136" in form
        assert "01-04-2024 kl. 00:30" in form
        assert "4 timer og 30 minutter tilbage" in form
        assert "https://sag.kommune.example.dk/sag/S-2024-0012" in form
    assert m.text.startswith("Kære Anne Holm,")
    assert m.subject == f"Frist i morgen kl. 00:30: {DUTY_NAMES_DA[Duty.ASSESSMENT_24H]} i sag S-2024-0012"


def test_each_item_is_one_compact_line_in_the_text_with_duty_case_due_time_left_paragraph_and_link():
    m = render_alerts([item(1), item(2, due=NOW + timedelta(days=2))], recipient_name="Anne", now=NOW)
    lines = [line for line in m.text.splitlines() if "S-2024-000" in line]
    assert len(lines) == 2
    assert lines[0] == (f"- Sag S-2024-0002: {DUTY_NAMES_DA[Duty.INVESTIGATION_4M]} – frist 22-03-2024 kl. 09:00 – "
                        "2 dage tilbage – BL § 20, stk. 3 – https://sag.kommune.example.dk/sag/S-2024-0002")
    assert "Hjemmel:" not in m.text  # no sentence-plus-bullets repetition


def test_the_html_is_a_table_with_headers_and_the_status_in_words():
    m = render_alerts([item(1, due=NOW - timedelta(days=2), kind=AlertKind.REMINDER, stage="reminder_1d",
                            status=Status.BREACHED), item(2)], recipient_name="Anne", now=NOW)
    assert m.html.count("<table") == 2 and m.html.count("<caption") == 2
    for header in ("Sag", "Pligt", "Frist", "Status", "Hjemmel"):
        assert f'<th scope="col">{header}</th>' in m.html
    assert "<td>overskredet med 2 dage</td>" in m.html and "<td>7 dage tilbage</td>" in m.html
    assert '<a href="https://sag.kommune.example.dk/sag/S-2024-0002">S-2024-0002</a>' in m.html


def test_every_duty_has_a_plain_danish_name():
    assert set(DUTY_NAMES_DA) == set(Duty)
    assert all(name and name == name.lower() for name in DUTY_NAMES_DA.values())


def test_without_a_recipient_name_the_greeting_is_neutral():
    m = render_alerts([item()], recipient_name=None, now=NOW)
    assert m.text.startswith("Hej,")


# --- grouping and order -------------------------------------------------------------------------

def test_what_can_still_be_met_comes_first_then_new_breaches_then_long_standing_ones():
    old = item(1, due=NOW - timedelta(days=200), kind=AlertKind.REMINDER, stage="reminder_196d",
               status=Status.BREACHED)
    older = item(2, due=NOW - timedelta(days=300), kind=AlertKind.REMINDER, stage="reminder_294d",
                 status=Status.BREACHED)
    new = item(3, due=NOW - timedelta(days=1), kind=AlertKind.REMINDER, stage="reminder_1d", status=Status.BREACHED)
    in_30d = item(4, due=NOW + timedelta(days=30))
    in_3d = item(5, due=NOW + timedelta(days=3))
    context = MessageContext(new_since=NOW - timedelta(days=7))
    m = render_alerts([old, older, new, in_30d, in_3d], recipient_name="Anne", now=NOW, context=context)
    expected = ["S-2024-0005", "S-2024-0004", "S-2024-0003", "S-2024-0001", "S-2024-0002"]
    for form in (m.text, m.html, json.dumps(m.card, ensure_ascii=False)):
        positions = [form.index(ref) for ref in expected]
        assert positions == sorted(positions), form
    assert m.subject.startswith(f"Frist om 3 dage (23-03-2024): {DUTY_NAMES_DA[Duty.INVESTIGATION_4M]} i sag S-2024-0005")
    assert "(+4 andre)" in m.subject
    text = m.text
    assert text.index("Frister, du stadig kan nå (2)") < text.index("Nye overskridelser (1)") \
        < text.index("Længe overskredet (2)")


def test_an_empty_group_is_refused():
    with pytest.raises(ValueError):
        render_alerts([], recipient_name=None, now=NOW)


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        render_alerts([item()], recipient_name=None, now=NOW.replace(tzinfo=None))


# --- time left and time late --------------------------------------------------------------------

@pytest.mark.parametrize(("now", "due", "expected"), [
    # The night of the spring DST change has 23 hours: received 30 March 23:30, due 1 April 00:30
    # local is 24 real hours (LEGAL.md).
    ("2024-03-30 23:30", "2024-04-01 00:30", "24 timer tilbage"),
    # From two days on, calendar days count: 20 March to 3 April is 14 days though only 13d23h pass.
    ("2024-03-20 00:00", "2024-04-03 00:00", "14 dage tilbage"),
    # The autumn change adds an hour: still 14 calendar days.
    ("2024-10-20 00:00", "2024-11-03 00:00", "14 dage tilbage"),
    ("2024-03-20 09:00", "2024-03-20 10:01", "1 time og 1 minut tilbage"),
    ("2024-03-20 09:00", "2024-03-20 09:45", "45 minutter tilbage"),
    ("2024-03-20 09:00", "2024-03-21 09:00", "24 timer tilbage"),
    ("2024-03-20 09:00", "2024-03-20 09:00", "forfalder nu"),
    ("2024-03-20 09:00", "2024-03-20 08:00", "overskredet med 1 time"),
    ("2024-03-20 09:00", "2024-03-20 05:50", "overskredet med 3 timer og 10 minutter"),
    ("2024-04-03 00:00", "2024-03-20 00:00", "overskredet med 14 dage"),
    ("2024-11-03 12:00", "2024-10-20 00:00", "overskredet med 14 dage"),
])
def test_time_left_and_time_late_read_in_danish_across_dst(now, due, expected):
    assert describe_time_left(at(due), at(now)) == expected


def test_the_due_time_is_shown_in_copenhagen_time_in_summer_and_winter():
    summer = render_alerts([item(due=at("2024-07-01 14:30"))], recipient_name=None, now=NOW)
    winter = render_alerts([item(due=at("2024-12-01 14:30"))], recipient_name=None, now=NOW)
    assert "01-07-2024 kl. 14:30" in summer.text
    assert "01-12-2024 kl. 14:30" in winter.text


def test_a_duty_due_on_a_date_is_shown_as_the_end_of_that_date_not_the_next_midnight():
    m = render_alerts([item(due=at("2024-12-01 00:00"))], recipient_name=None, now=NOW)
    assert "udgangen af 30-11-2024" in m.text
    assert "01-12-2024 kl. 00:00" not in m.text


# --- kinds ----------------------------------------------------------------------------------------

def test_a_reassessment_by_municipal_policy_says_kommunal_frist_in_every_form():
    m = render_alerts([item(duty=Duty.REASSESSMENT, municipal_policy=True, citation="BL § 137, stk. 1",
                            stage="at_receipt")], recipient_name="Bo", now=NOW)
    assert "kommunal frist" in m.text
    assert "kommunal frist" in m.html
    assert "kommunal frist" in json.dumps(m.card, ensure_ascii=False)


def test_a_statutory_deadline_does_not_say_kommunal_frist():
    m = render_alerts([item()], recipient_name="Bo", now=NOW)
    assert "kommunal" not in all_text(m)


def test_an_escalation_says_the_deadline_is_breached_and_whose_case_it_is():
    m = render_alerts([item(kind=AlertKind.ESCALATION, stage="breach", due=NOW - timedelta(days=3),
                            status=Status.BREACHED, responsible_name="Carla Jensen")],
                      recipient_name="Leder Lise", now=NOW, context=MessageContext(leader=True))
    assert m.subject.startswith("Frist overskredet: ")
    assert "S-2024-0001" in m.subject
    assert "overskredet med 3 dage" in m.text
    assert "rådgiver: Carla Jensen" in m.text
    assert "Carla Jensen" in json.dumps(m.card, ensure_ascii=False)
    assert "Nye overskridelser siden din sidste besked (1)" in m.text


def test_a_reminder_reads_as_a_reminder_of_a_breach_that_is_still_open():
    m = render_alerts([item(kind=AlertKind.REMINDER, stage="reminder_7d", due=NOW - timedelta(days=8),
                            status=Status.BREACHED)], recipient_name="Anne", now=NOW,
                      context=MessageContext(new_since=NOW - timedelta(days=2)))
    assert m.subject.startswith("Påmindelse")
    assert "fortsat overskredet" in m.subject
    assert "Længe overskredet" in m.text


def test_an_excepted_investigation_reminder_asks_to_finish_it_snarest():
    m = render_alerts([item(kind=AlertKind.REMINDER, stage="snarest_0", due=NOW - timedelta(days=1),
                            status=Status.EXCEPTED)], recipient_name="Anne", now=NOW)
    assert "foreløbig vurdering" in m.text and "snarest" in m.text
    assert "stadig overskredet" not in m.text


def test_warnings_and_escalations_read_differently():
    warning = render_alerts([item(due=NOW + timedelta(hours=2))], recipient_name="A", now=NOW)
    escalation = render_alerts([item(kind=AlertKind.ESCALATION, stage="breach", due=NOW - timedelta(hours=2),
                                     status=Status.BREACHED)], recipient_name="A", now=NOW)
    assert warning.subject != escalation.subject
    assert warning.text != escalation.text


# --- card and HTML --------------------------------------------------------------------------------

def test_the_card_is_an_adaptive_card_1_4_with_one_line_and_a_link_per_case():
    m = render_alerts([item(1), item(2, due=NOW + timedelta(days=1))], recipient_name=None, now=NOW)
    assert m.card["type"] == "AdaptiveCard" and m.card["version"] == "1.4"
    containers = [b for b in m.card["body"] if b["type"] == "Container"]
    assert len(containers) == 2
    assert containers[0]["selectAction"] == {"type": "Action.OpenUrl", "title": "Åbn sag S-2024-0002",
                                             "url": "https://sag.kommune.example.dk/sag/S-2024-0002"}
    (line,) = containers[0]["items"]
    assert "[S-2024-0002](https://sag.kommune.example.dk/sag/S-2024-0002)" in line["text"]
    assert "24 timer tilbage" in line["text"]


def test_a_long_list_is_cut_with_og_n_flere_and_the_link_to_the_full_list():
    items = [item(n, due=NOW + timedelta(days=n)) for n in range(1, 41)]
    context = MessageContext(list_url="https://frister.kommune.example.dk/", max_items=20)
    m = render_alerts(items, recipient_name=None, now=NOW, context=context)
    assert sum(1 for b in m.card["body"] if b["type"] == "Container") == CARD_MAX_ITEMS
    assert "og 25 flere" in json.dumps(m.card, ensure_ascii=False)
    assert all(i.case_ref in m.text for i in items[:20]) and items[20].case_ref not in m.text
    assert "og 20 flere: https://frister.kommune.example.dk/" in m.text
    assert 'og 20 flere: <a href="https://frister.kommune.example.dk/">' in m.html
    assert len(json.dumps(m.card).encode()) < 28_000


def test_html_escapes_what_comes_from_the_case_store():
    m = render_alerts([item(case_ref="S-<b>1</b>&2")], recipient_name="<script>x</script>", now=NOW)
    assert "<script>" not in m.html and "&lt;script&gt;" in m.html
    assert "S-&lt;b&gt;1&lt;/b&gt;&amp;2" in m.html


# --- payloads -------------------------------------------------------------------------------------

def test_a_message_survives_the_payload_round_trip():
    m = render_alerts([item()], recipient_name="A", now=NOW)
    assert message_from_payload(json.loads(json.dumps(message_to_payload(m)))) == m


def test_a_payload_with_only_subject_and_text_gets_html_and_a_card():
    m = message_from_payload({"subject": "Ugeoversigt", "text": "Linje 1\n\nLinje <2>"})
    assert m.html == "<p>Linje 1</p><p>Linje &lt;2&gt;</p>"
    assert m.card["version"] == "1.4" and m.card["body"][0]["text"] == "Ugeoversigt"


@pytest.mark.parametrize("payload", [{}, {"subject": "x"}, {"text": "y"}, {"subject": "", "text": "y"}, []])
def test_a_payload_without_subject_or_text_is_refused(payload):
    with pytest.raises((ValueError, TypeError)):
        message_from_payload(payload)


# --- the CPR net ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["CPR 010190-1234", "0101901234", "barn (311299-0001) i sag", "x:2902881111."])
def test_find_sensitive_catches_cpr_numbers(text):
    assert len(find_sensitive(text)) == 1


@pytest.mark.parametrize("text", [
    "2024-01-15", "S-2024-0012", "01-04-2024 kl. 00:30", "sag 12345678901", "alert 4401901234567",
    "BL § 20, stk. 3", "tlf. 12 34 56 78", "321390-1234",
])
def test_find_sensitive_leaves_dates_case_references_and_long_numbers_alone(text):
    assert find_sensitive(text) == []


def test_every_rendered_text_html_and_card_is_free_of_cpr_numbers():
    kinds = [(AlertKind.WARNING, "before_7d", Status.OPEN), (AlertKind.ESCALATION, "breach", Status.BREACHED),
             (AlertKind.REMINDER, "reminder_1", Status.BREACHED), (AlertKind.REMINDER, "snarest_0", Status.EXCEPTED)]
    offsets = [timedelta(days=-40), timedelta(hours=-5), timedelta(minutes=10), timedelta(days=3), timedelta(days=120)]
    rendered = 0
    for (kind, stage, status), duty, offset, policy in itertools.product(kinds, Duty, offsets, (False, True)):
        m = render_alerts([item(7, kind=kind, stage=stage, status=status, duty=duty, due=NOW + offset,
                                municipal_policy=policy, responsible_name="Carla Jensen",
                                case_ref="S-2019-000123")],
                          recipient_name="Anne Holm", now=NOW)
        assert message_sensitive(m) == [], m.text
        rendered += 1
    assert rendered == 4 * len(Duty) * 5 * 2
    assert message_sensitive(render_test_message(now=NOW, municipality="Ishøj Kommune")) == []


def test_the_net_would_catch_a_cpr_number_smuggled_in_through_a_case_reference():
    m = render_alerts([item(case_ref="010190-1234")], recipient_name=None, now=NOW)
    assert message_sensitive(m)


def test_two_alerts_about_one_deadline_in_one_message_make_one_line():
    # A leader covering for an absent caseworker: the escalation and the reminder of one breach.
    due = NOW - timedelta(days=8)
    escalation = AlertItem(**{**item(1, kind=AlertKind.ESCALATION, stage="breach", due=due,
                                     status=Status.BREACHED).__dict__, "deadline_id": 77})
    reminder = AlertItem(**{**item(2, kind=AlertKind.REMINDER, stage="reminder_7d", due=due,
                                   status=Status.BREACHED, case_ref="S-2024-0001").__dict__, "deadline_id": 77})
    m = render_alerts([reminder, escalation], recipient_name="Lise", now=NOW, context=MessageContext(leader=True))
    assert [line for line in m.text.splitlines() if line.startswith("- Sag ")] == [
        line for line in m.text.splitlines() if line.startswith("- Sag S-2024-0001")]
    assert sum(1 for line in m.text.splitlines() if line.startswith("- Sag ")) == 1


def test_a_leaders_message_leads_with_counts_per_caseworker_and_counts_the_backlog_without_listing_it():
    backlog = [AlertItem(**{**item(n, kind=AlertKind.ESCALATION, stage="backlog", due=NOW - timedelta(days=200 + n),
                                   status=Status.BREACHED, responsible_name=f"Rådgiver {n % 3}").__dict__,
                            "team_name": "Team Nord", "deadline_id": n}) for n in range(1, 301)]
    new = item(999, kind=AlertKind.ESCALATION, stage="breach", due=NOW - timedelta(hours=3), status=Status.BREACHED,
               responsible_name="Rådgiver 1")
    counts = tuple(WorkerCount(f"Rådgiver {i}", 100, i) for i in range(3))
    context = MessageContext(leader=True, counts=counts, counts_scope="Team Nord",
                             list_url="https://frister.kommune.example.dk/team", max_items=15)
    m = render_alerts([*backlog, new], recipient_name="Lise", now=NOW, context=context)
    text = m.text
    assert len(text.splitlines()) < 150
    assert text.index("Overblik pr. rådgiver i Team Nord") < text.index("Nye overskridelser siden din sidste besked (1)")
    assert "- Rådgiver 2: 100 overskredet, 2 inden for 7 dage" in text
    assert "Gamle overskridelser fundet ved opstart – Team Nord: 300" in text
    assert "Pr. rådgiver: Rådgiver 0 100, Rådgiver 1 100, Rådgiver 2 100." in text
    assert sum(1 for line in text.splitlines() if line.startswith("- Sag ")) == 1
    assert "Hele listen: https://frister.kommune.example.dk/team" in text
    assert '<th scope="row">Rådgiver 2</th><td>100</td><td>2</td>' in m.html
    assert message_sensitive(m) == []
