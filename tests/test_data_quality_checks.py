"""The data-quality checks as the database makes them (intake.quality_checks): instants compared
to the microsecond and across offsets, the running measure a support flag contradicts chosen as
the rules choose it, and stored warnings refreshed, resolved and left alone exactly as a record's
checks say, with nothing written when a re-import shows the same."""

from __future__ import annotations

from sqlalchemy import event
from sqlmodel import Session, select

from conftest import at
from test_data_quality import FILES, import_, write
from watchdog.intake.quality import DataQualityWarning

BASE = {
    "teams.csv": "ext_id;name\nT;Team\n",
    "workers.csv": "ext_id;name;email;team\nW;Anne;a@kommune.example.dk;T\n",
    "cases.csv": ("ext_id;team;worker;opened_at\n" + "".join(
        f"S-{i};T;W;2024-01-01T09:00:00+00:00\n" for i in range(1, 6))),
}
T0, T1, T2 = "2024-02-01T10:00:00.000000+00:00", "2024-03-01T10:00:00.000000+00:00", "2024-04-01T10:00:00.000000+00:00"
BEFORE_T1, BEFORE_T2 = "2024-03-01T09:59:59.999999+00:00", "2024-04-01T09:59:59.999999+00:00"
EDGES = {
    **BASE,
    "notifications.csv": (
        "ext_id;case;received_at;assessed_at;child_in_support\n"
        f"U-EQ;S-1;{T1};{T1};ja\n"
        f"U-TICK;S-1;{T1};{BEFORE_T1};ja\n"
        # 10:30 at +01:00 is 09:30 UTC, before 10:00 UTC; 09:30 UTC is after 10:00 at +01:00.
        "U-OFF;S-1;2024-02-10T10:00:00+00:00;2024-02-10T10:30:00+01:00;ja\n"
        "U-OFF2;S-1;2024-02-10T10:00:00+01:00;2024-02-10T09:30:00+00:00;ja\n"
        # S-2: two measures effected at T1: the one with the lower id wins (M-A: the writer
        # stores a chunk in ext_id order).
        f"U-S1;S-2;{T1};;nej\n"
        # S-3: a support measure effected at T0 and ended at T2: not running at T2, running just before.
        f"U-S3;S-3;{T2};;nej\n"
        f"U-S4;S-3;{BEFORE_T2};;nej\n"
        f"U-S6;S-3;{BEFORE_T2};;ja\n"
        # S-4: only an 'other' measure runs; S-5: its measure takes effect after the receipt.
        f"U-S7;S-4;{T1};;nej\n"
        f"U-S8;S-5;{BEFORE_T1};;nej\n"),
    "investigations.csv": ("ext_id;case;aware_at;completed_at\n"
                           f"B-EQ;S-1;{T1};{T1}\nB-TICK;S-1;{T1};{BEFORE_T1}\n"),
    "measures.csv": (
        "ext_id;case;kind;legal_basis;decided_at;effected_at;ended_at\n"
        f"F-EQ;S-1;support;BL § 32;{T1};{T1};\n"
        f"F-TICK;S-1;support;BL § 32;{T1};{BEFORE_T1};\n"
        f"M-B;S-2;support;BL § 32;{T0};{T1};\n"
        f"M-A;S-2;placement_consent;BL § 46;{T0};{T1};\n"
        f"M-C;S-3;support;BL § 32;{T0};{T0};{T2}\n"
        f"M-O;S-4;other;SEL § 11;{T0};{T0};\n"
        f"M-L;S-5;support;BL § 32;{T0};{T1};\n"),
    "follow_ups.csv": ("ext_id;measure;performed_at\n"
                       f"O-EQ;F-EQ;{T1}\nO-TICK;F-EQ;2024-03-01T09:59:59.999999+00:00\nO-LATE;F-EQ;{T2}\n"),
}


def test_instants_are_compared_to_the_microsecond_and_across_offsets(engine, tmp_path):
    result = import_(engine, write(tmp_path, EDGES))
    got = {(w.kind, w.record_ext_id, w.field) for w in result.warnings}
    assert got == {
        ("assessed_before_receipt", "U-TICK", "assessed_at"),
        ("assessed_before_receipt", "U-OFF", "assessed_at"),
        ("support_flag_contradicts_measure", "U-S1", "child_in_support"),
        ("support_flag_contradicts_measure", "U-S4", "child_in_support"),
        ("completed_before_awareness", "B-TICK", "completed_at"),
        ("effected_before_decision", "F-TICK", "effected_at"),
        ("follow_up_before_effect", "F-EQ", "effected_at"),
        ("follow_up_before_effect", "O-TICK", "performed_at"),
    }
    by_id = {w.record_ext_id: w for w in result.warnings}
    assert "(placement_consent)" in by_id["U-S1"].message
    assert "(support) iværksat 01-02-2024" in by_id["U-S4"].message
    assert "opfølgning(er) O-TICK:" in by_id["F-EQ"].message
    assert all(w.case_ref == "S-" + {"U-S1": "2", "U-S4": "3"}.get(w.record_ext_id, "1") for w in result.warnings)
    # Listed by entity, then in the order of the file.
    assert [w.record_ext_id for w in result.warnings] == ["U-TICK", "U-OFF", "U-S1", "U-S4", "B-TICK",
                                                          "F-EQ", "F-TICK", "O-TICK"]


def stored(engine) -> dict[tuple[str, str], DataQualityWarning]:
    with Session(engine) as s:
        return {(w.kind, w.record_ext_id): w for w in s.exec(select(DataQualityWarning))}


def writes(engine):
    """The statements that write data_quality_warning, while the block runs."""
    seen: list[str] = []

    def note(conn, cursor, statement, *args):
        if "data_quality_warning" in statement and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return seen, lambda: event.remove(engine, "before_cursor_execute", note)


def test_stored_warnings_are_refreshed_resolved_and_left_alone_as_the_checks_say(engine, tmp_path):
    first = at("2024-12-02 10:00")
    import_(engine, write(tmp_path, FILES), now=first)
    before = stored(engine)
    assert len(before) == 6 and all(w.resolved_at is None and w.detected_at == first for w in before.values())

    # The same export again: the same warnings, and not one statement writes them.
    (tmp_path / "again").mkdir()
    seen, stop = writes(engine)
    try:
        again = import_(engine, write(tmp_path / "again", FILES), now=at("2024-12-03 10:00"))
    finally:
        stop()
    assert len(again.warnings) == 6 and seen == []
    assert {k: (w.id, w.detected_at, w.resolved_at) for k, w in stored(engine).items()} == {
        k: (w.id, w.detected_at, w.resolved_at) for k, w in before.items()}

    # U-1 fixed. F-1 now ends before U-2 arrives, but U-2 no longer gives child_in_support (the
    # column is absent): its flag is not checked, and its warning stays.
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    second = at("2024-12-04 10:00")
    ended = FILES["measures.csv"].replace("ext_id;case;kind;legal_basis;decided_at;effected_at\n",
                                          "ext_id;case;kind;legal_basis;decided_at;effected_at;ended_at\n")
    ended = ended.replace("01-03-2024 09:00\n", "01-03-2024 09:00;01-04-2024 09:00\n")
    import_(engine, write(fixed, {"measures.csv": ended,
                                  "notifications.csv": ("ext_id;case;received_at;assessed_at\n"
                                                        "U-1;S-1;10-02-2024 10:00;10-02-2024 15:00\n"
                                                        "U-2;S-1;02-05-2024 10:00;02-05-2024 12:00\n")}),
            now=second)
    after = stored(engine)
    assert after[("assessed_before_receipt", "U-1")].resolved_at == second
    assert after[("support_flag_contradicts_measure", "U-2")].resolved_at is None
    # The investigation's warning is not a check of this import's records; the measure's still hold.
    assert all(w.resolved_at is None for (kind, _), w in after.items() if kind != "assessed_before_receipt")

    # Given again (nej), U-2's flag is checked: the measure has ended, the warning is resolved.
    flagged = tmp_path / "flagged"
    flagged.mkdir()
    import_(engine, write(flagged, {"notifications.csv": ("ext_id;case;received_at;child_in_support\n"
                                                          "U-2;S-1;02-05-2024 10:00;nej\n")}),
            now=at("2024-12-04 11:00"))
    assert stored(engine)[("support_flag_contradicts_measure", "U-2")].resolved_at == at("2024-12-04 11:00")

    # Broken again: the same row, detected anew.
    broken = tmp_path / "broken"
    broken.mkdir()
    third = at("2024-12-05 10:00")
    not_ended = ended.replace("01-03-2024 09:00;01-04-2024 09:00\n", "01-03-2024 09:00;\n")
    result = import_(engine, write(broken, {"measures.csv": not_ended,
                                            "notifications.csv": FILES["notifications.csv"]}), now=third)
    assert {(w.record_ext_id, w.field) for w in result.warnings if w.entity == "notifications"} == {
        ("U-1", "assessed_at"), ("U-2", "child_in_support")}
    for key in (("assessed_before_receipt", "U-1"), ("support_flag_contradicts_measure", "U-2")):
        row = stored(engine)[key]
        assert (row.id, row.detected_at, row.resolved_at) == (before[key].id, third, None)

    # A warning still shown with another message: the stored row gets the message, keeps its
    # detection time.
    moved = tmp_path / "moved"
    moved.mkdir()
    import_(engine, write(moved, {"measures.csv": ("ext_id;case;kind;legal_basis;decided_at;effected_at\n"
                                                   "F-1;S-1;support;BL § 32;05-03-2024 10:00;02-03-2024 09:00\n")}),
            now=at("2024-12-06 10:00"))
    final = stored(engine)
    assert final[("effected_before_decision", "F-1")].resolved_at is None
    assert "02-03-2024" in final[("effected_before_decision", "F-1")].message
    assert final[("effected_before_decision", "F-1")].detected_at == first


def test_check_stored_takes_ext_ids_with_their_origin_as_check_imported_takes_records(engine, tmp_path):
    from watchdog.intake.quality import check_imported, check_stored
    from watchdog.intake.schemas import ENTITIES
    from watchdog.intake.writing import Imported

    import_(engine, write(tmp_path, FILES))
    spec, later = ENTITIES["notifications"], at("2024-12-03 10:00")
    rows = {"U-1": "2", "U-2": "3"}
    with Session(engine) as s:
        unflagged = check_stored(s, "notifications", ["U-2", "U-1"], now=later, unflagged={"U-2"},
                                 origin=lambda ext_id: ("n.csv", rows[ext_id]))
        # U-2's flag is not checked: no finding for it, and its stored warning is not resolved.
        assert [(f.record_ext_id, f.field, f.source, f.record, f.case_ref) for f in unflagged] == [
            ("U-1", "assessed_at", "n.csv", "2", "S-1")]
        everything = check_stored(s, "notifications", ["U-2", "U-1"], now=later,
                                  origin=lambda ext_id: ("n.csv", rows[ext_id]))
        records = [Imported(spec, "U-2", "n.csv", "3", frozenset({"child_in_support"})),
                   Imported(spec, "U-1", "n.csv", "2", frozenset())]
        assert check_imported(s, records, now=later) == everything
        assert [(f.record_ext_id, f.field) for f in everything] == [("U-2", "child_in_support"), ("U-1", "assessed_at")]
        assert all(w.resolved_at is None for w in s.exec(select(DataQualityWarning)))
        assert check_stored(s, "teams", ["T"], now=later, origin=rows.get) == []
