"""The intake's fast paths give what the full readings give: the same values, the same refusals.

Each fast path (an ISO cell read by fromisoformat, a ja/nej looked up, a plain text passed by the
CPR guard in one search, a file's rows read by code compiled for its header, each model's
validator called directly) is compared here with the full reading it stands in for, on the cells
it takes and on the cells it must leave to the full reading.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from typing import get_args

import pytest

from watchdog.errors import Problem
from watchdog.intake import cells, schemas
from watchdog.intake.parsing import read_csv_text
from watchdog.intake.rows import column_plan, plan_record, text_reader, text_record
from watchdog.intake.schemas import ENTITIES
from watchdog.intake.upsert import iter_valid, problems_from_pydantic
from watchdog.sensitive import _CPR, normalize

INSTANTS = [
    "2024-03-05T14:30:00+01:00", "2024-03-05T14:30+01:00", "2024-03-05T14:30:00.123456+00:00",
    "2024-03-05T14:30:00.5+01:00", "2024-07-01T08:00:00+02:00", "2024-03-05T09:00:00-05:00",
    "2024-03-05T14:30:00-00:00", "2024-03-05T14:30:00+14:00", "2024-03-05T14:30:00+05:45",
    "2024-03-05T14:30:00+01:00:30", "20240305T1430+0100", "2024-W10-2T10:00+01:00",
    "2024-03-05T14:30:00Z", "2024-03-05T14:30:00z", "2024-03-05T14:30:00",  # Z, z and no offset
    "2024-03-05 14:30", "2024-03-05", "20240305", " 2024-03-05T14:30+01:00", "2024-03-05T14:30+01:00 ",
    "\xa02024-03-05T14:30+01:00\xa0", "\t2024-03-05T14:30+01:00\n",
    "05-03-2024 14:30", "05-03-2024", "5.3.2024 8.05", "05-03-2024T14:30:15", " 05-03-2024 ",
    "27-10-2024 02:30", "31-03-2024 02:30", "2024-10-27T02:30", "2024-03-31T02:30",  # fold, gap
    "2024-10-27T02:30+02:00", "2024-10-27T02:30+01:00",
    "9999-12-31T20:00-14:00", "0001-01-01T00:30+01:00", "9999-12-31T23:59", "0001-01-01T00:00",
    "2024-02-30T10:00+01:00", "2024-03-05T24:00+01:00", "2024-13-05T10:00+01:00", "2024-03-05T10:00+25:00",
    "3/5/2024", "13/5/2024 10:00", "2024/03/05", "２０２４-03-05T14:30+01:00", "2024-03-05T14:30+01:00x",
    "1", "12", "123", "12345678", "0", "x2024-03-05T14:30+01:00", "-", "2024-03-05T14:30+0",
]


def _outcome(read, text: str):
    try:
        value = read(text)
    except (ValueError, OverflowError) as exc:
        return ("refused", type(exc), str(exc))
    return ("read", value, getattr(value, "tzinfo", None), type(value))


@pytest.mark.parametrize("text", INSTANTS)
def test_an_instant_reads_as_the_full_reading_reads_it(text):
    full = lambda t: cells._parse_instant(t, True)  # noqa: E731
    assert _outcome(cells.parse_instant, text) == _outcome(full, text)
    strict = lambda t: cells.parse_instant(t, naive_is_local=False)  # noqa: E731
    assert _outcome(strict, text) == _outcome(lambda t: cells._parse_instant(t, False), text)


def test_the_instant_fast_path_gives_utc_for_every_offset():
    for minutes in range(-14 * 60, 14 * 60 + 1, 15):
        offset = timezone(timedelta(minutes=minutes))
        text = datetime(2024, 3, 5, 14, 30, 15, 250, tzinfo=offset).isoformat()
        value = cells.parse_instant(text)
        assert value == cells._parse_instant(text, True) and value.tzinfo is UTC


@pytest.mark.parametrize("text", INSTANTS + ["2024-03-05", "2024-3-5", "05.03.2024", "5-3-2024", "2024-02-29",
                                             "2023-02-29", "0000-01-01", "20240305", "2024-W10-2", "2024-03-05 "])
def test_a_date_reads_as_the_full_reading_reads_it(text):
    assert _outcome(cells.parse_date, text) == _outcome(cells._parse_date, text)


@pytest.mark.parametrize("text", ["ja", "nej", "Ja", "NEJ", " ja", "nej ", "j", "n", "x", "X", "1", "0", "true",
                                  "False", "sand", "falsk", "yes", "no", "y", "måske", "2", "ja nej", "\xa0ja"])
def test_a_boolean_reads_as_the_full_reading_reads_it(text):
    assert _outcome(cells.parse_bool, text) == _outcome(cells._parse_bool, text)


# ------------------------------------------------------------------------------------------
# The CPR guard on text values
# ------------------------------------------------------------------------------------------

def _check_of(annotated):
    """The AfterValidator function of a text type (ExtId, Name, Email …)."""
    return next(m.func for m in annotated.__metadata__ if hasattr(m, "func"))


TEXT_TYPES = {"ExtId": (schemas.ExtId, (schemas._one_line,)), "Name": (schemas.Name, (schemas._one_line,)),
              "Email": (schemas.Email, (schemas._one_line, schemas._email)),
              "Url": (schemas.Url, (schemas._one_line, schemas._http_url)),
              "Exemption": (schemas.Exemption, ())}


def _full_check(checks, value):
    value = schemas._no_cpr(value)
    for c in checks:
        value = c(value)
    return value


def _texts():
    """Every character of the BMP's first blocks, alone and in the places a CPR number hides."""
    chars = [chr(i) for i in range(0x3100)] + ["\ufeff", "\ufffd", "\uff10", "\uff0d", "\U0001d7ce"]
    for c in chars:
        yield c
        yield f"S-{c}1"
        yield f"010190{c}1234"
        yield f"01{c}01{c}90{c}1234"
        yield f"Søren{c}0101901234"
        yield f"a@b{c}.dk"
    yield from ["0101901234", "010190-1234", "01.01.90 - 1234", "01/01/90/1234", "x 311299  1234 y",
                "3201901234", "0113901234", "10101901234", "01019012345", "https://x.dk/?cpr=010190%2D1234",
                "https://x.dk/a%20b", "Tom & Jerry", "&#48;101901234", "0101901234\n", "K001-W000010",
                "Barnets alder og modenhed taler afgørende imod samtale", "BL § 32, stk. 1, nr. 3",
                "w1@k001.example", "https://teams.example/x", "ÆØÅ æøå É ü", "a\tb", "a\r\nb", "½", "é"]


@pytest.mark.parametrize("name", TEXT_TYPES)
def test_the_cpr_guard_refuses_and_passes_what_the_full_guard_does(name):
    annotated, checks = TEXT_TYPES[name]
    check = _check_of(annotated)
    for text in _texts():
        assert _outcome(check, text) == _outcome(lambda t: _full_check(checks, t), text), repr(text)


def test_a_plain_text_is_its_own_normal_form_so_the_pattern_reads_it_as_it_is():
    plain = [chr(i) for i in range(0x110000) if schemas._NOT_PLAIN.search(chr(i)) is None]
    assert len(plain) == 95 - 2 + 1 + 23 + 31 + 8  # printable ASCII but % &, §, the Latin-1 letters
    joined = "".join(plain)
    assert normalize(joined) == joined and unicodedata.is_normalized("NFKC", joined)
    for a in plain:
        for b in "a0 -§øÅ":
            assert normalize(a + b) == a + b and normalize(b + a) == b + a
    assert schemas._plain_text("Barnets alder og modenhed taler afgørende imod samtale")
    assert not schemas._plain_text("Søren 010190-1234") and not schemas._plain_text("a\nb")
    assert _CPR.search("Søren 010190-1234")


def test_an_instant_in_utc_keeps_its_form_and_one_past_the_last_is_refused():
    value = datetime(2024, 3, 5, 13, 30, tzinfo=UTC)
    assert schemas._utc_form(value) is value
    late = datetime(9999, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-14)))
    with pytest.raises(ValueError, match="outside the times"):
        schemas._utc_form(late)
    assert get_args(schemas.Instant)[0] is schemas.AwareDatetime


# ------------------------------------------------------------------------------------------
# Rows: the compiled reader, the text reader and the general one
# ------------------------------------------------------------------------------------------

ROWS = [
    ["U-1", "S-1", "2024-03-05T14:30+01:00", "ja", "", "", "", "nej", "", "", "W-1, W-2"],
    ["U-2", "S-1", "05-03-2024 14:30", "Ja ", "  ", "W-1", "06-03-2024", " nej", "", "x", ""],
    ["U-3", "", "", "", "", "", "", "", "", "", ""],
    ["  ", "S-1", "31-03-2024 02:30", "måske", "2024-02-30T10:00+01:00", "W-1", "3/5/2024", "2", "",
     "", "W-3|W-4"],
    ["U-4", "S-1", "2024-03-05T14:30+01:00"],  # short: the missing cells are empty
    ["U-5", "S-1", "2024-03-05T14:30+01:00", "ja", "", "", "", "nej", "", "", "", "", " "],  # blank extras
    ["U-6", "S-1", "2024-03-05T14:30+01:00", "ja", "", "", "", "nej", "", "", "", "spare", ""],  # extras
    [],
]
COLUMNS = ["ext_id", "case", "received_at", "professional_notifier", "assessed_at", "assessed_by",
           "receipt_confirmed_at", "child_in_support", "reassessed_at", "reassessment_reasoning_recorded",
           "reassessment_participants"]


def _as_tuple(rec):
    return (rec.entity, rec.source, rec.record, rec.values, [(p.source, p.record, p.field, p.reason)
                                                              for p in rec.problems])


@pytest.mark.parametrize("columns", [COLUMNS, list(reversed(COLUMNS)), COLUMNS[:3]])
def test_every_row_reader_gives_the_same_record(columns):
    spec = ENTITIES["notifications"]
    plan = column_plan(spec, columns)
    compiled = text_reader(spec, columns)
    for number, row in enumerate(ROWS, start=2):
        row = row if columns is COLUMNS else row[:len(columns)] if columns == COLUMNS[:3] else list(reversed(row))
        general = plan_record(spec, plan, "n.csv", number, row)
        assert _as_tuple(text_record(spec.name, plan, "n.csv", number, row)) == _as_tuple(general)
        assert _as_tuple(compiled("n.csv", number, row)) == _as_tuple(general)


def test_a_default_made_anew_is_made_anew_for_every_row_by_the_compiled_reader():
    spec = ENTITIES["workers"]
    compiled = text_reader(spec, ["ext_id", "name", "email", "team", "role", "fte", "active"])
    a = compiled("w.csv", 2, ["W-1", "A", "a@b.dk", "", "", "", ""])
    b = compiled("w.csv", 3, ["W-2", "B", "b@b.dk", "T", "leader", "0,5", "nej"])
    assert a.values == {"ext_id": "W-1", "name": "A", "email": "a@b.dk", "team": None, "role": "caseworker",
                        "fte": 1.0, "active": True}
    assert b.values["fte"] == 0.5 and b.values["active"] is False and b.values["role"] == "leader"


def test_the_compiled_source_names_no_column():
    """Column names come from the file's header: they are bound as values, never written as code."""
    import inspect

    spec = ENTITIES["teams"]
    compiled = text_reader(spec, ["ext_id", "name"])
    assert compiled.__code__.co_filename == "<text_reader teams>"
    assert "ext_id" not in compiled.__code__.co_consts and "name" not in compiled.__code__.co_consts
    with pytest.raises(OSError):
        inspect.getsource(compiled)


def test_a_csv_with_a_bom_spaces_and_danish_cells_reads_as_before():
    text = ("\ufeffext_id;case;received_at;professional_notifier;assessed_at\r\n"
            " U-1 ;S-1; 05-03-2024 14:30 ;JA;2024-03-05T16:00:00+01:00\r\n"
            ";;;;\r\n"
            "U-2;S-1;2024-07-01T08:00+02:00;nej;\r\n")
    records = list(read_csv_text(text, ENTITIES["notifications"], "underretninger.csv"))
    assert [r.record for r in records] == ["2", "4"]
    assert records[0].values == {"ext_id": " U-1 ", "case": "S-1",
                                 "received_at": datetime(2024, 3, 5, 13, 30, tzinfo=UTC),
                                 "professional_notifier": True,
                                 "assessed_at": datetime(2024, 3, 5, 15, 0, tzinfo=UTC)}
    assert records[1].values["received_at"] == datetime(2024, 7, 1, 6, 0, tzinfo=UTC)
    assert records[1].values["assessed_at"] is None and records[0].problems == []


# ------------------------------------------------------------------------------------------
# Validation: each model's own validator, called directly
# ------------------------------------------------------------------------------------------

def _raw(entity, values, problems=()):
    from watchdog.intake.rows import RawRecord

    return RawRecord(entity, f"{entity}.csv", "7", values, list(problems))


def test_iter_valid_names_the_same_problems_as_model_validate():
    bad = [
        _raw("cases", {"ext_id": "S-1", "team": "T 0101901234", "opened_at": datetime(2024, 3, 5, tzinfo=UTC),
                       "navn": "Søren"}),
        _raw("cases", {"ext_id": "S-1", "team": "T-1", "opened_at": datetime(2024, 3, 5, tzinfo=UTC),
                       "closed_at": datetime(2024, 3, 1, tzinfo=UTC)}),
        _raw("workers", {"ext_id": "W\n1", "name": " ", "email": "not-an-address", "fte": 2.0}),
        _raw("notifications", {"ext_id": "U-1", "case": "S-1", "received_at": "2024-03-05T10:00:00",
                               "reassessment_participants": ["W-1", "0101901234"]}),
        _raw("measures", {"ext_id": "F-1", "case": "S-1", "kind": "support", "legal_basis": "BL § 32\x00",
                          "decided_at": datetime(2024, 3, 5, tzinfo=UTC)}),
        _raw("teams", {"ext_id": "T-1", "name": "Øst"}, [Problem("teams.csv", "7", "name", "bad cell")]),
    ]
    for raw in bad:
        spec = ENTITIES[raw.entity]
        try:
            spec.model.model_validate(raw.values)
            expected = list(raw.problems)
        except Exception as exc:  # noqa: BLE001 - a pydantic ValidationError
            already = {p.field for p in raw.problems}
            expected = list(raw.problems) + [
                p for p in problems_from_pydantic(exc.errors(), spec, raw.source, raw.record)
                if p.field not in already]
        problems: list[Problem] = []
        assert list(iter_valid([raw], problems)) == []
        assert [p.as_dict() for p in problems] == [p.as_dict() for p in expected] and problems
    reasons = {p.field: p.reason for raw in bad[:3] for p in problems_of(raw)}
    assert reasons["navn"].startswith("looks like a CPR number or a child's name")
    assert reasons["team"] == "contains what looks like a CPR number: the store never holds one"
    assert reasons["closed_at"] == "closed_at is before opened_at"
    assert reasons["email"] == "'not-an-address' is not an email address"


def problems_of(raw):
    problems: list[Problem] = []
    list(iter_valid([raw], problems))
    return problems


def test_iter_valid_gives_the_model_model_validate_gives():
    values = {"ext_id": " S-1 ", "team": "T-1", "opened_at": datetime(2024, 3, 5, 9, tzinfo=UTC),
              "birth_date": date(2010, 1, 2), "link": "https://sag.example/S-1"}
    (valid,) = iter_valid([_raw("cases", values)], [])
    expected = ENTITIES["cases"].model.model_validate(values)
    assert type(valid.data) is type(expected) and valid.data == expected
    assert valid.given == frozenset(values) and valid.ext_id == "S-1"


def test_records_that_give_the_same_fields_share_one_set_of_them():
    opened = datetime(2024, 3, 5, 9, tzinfo=UTC)
    a, b, c = iter_valid([_raw("cases", {"ext_id": "S-1", "team": "T-1", "opened_at": opened}),
                          _raw("cases", {"ext_id": "S-2", "team": "T-1", "opened_at": opened}),
                          _raw("cases", {"ext_id": "S-3", "team": "T-1", "opened_at": opened, "worker": None})], [])
    assert a.given == b.given == frozenset({"ext_id", "team", "opened_at"}) and a.given is b.given
    assert c.given == a.given | {"worker"} and isinstance(c.given, frozenset)
