"""Absences from the web: a leader registers one and the warning goes to the substitute; an import
and a web entry never fight (the import never touches a web row, the web refuses to change an
imported one, and where both cover the same day the web row wins)."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import at
from fixtures_servers import settings_for
from sqlmodel import Session, select
from test_alerts_e2e import ANNE, BO, CARL, Town, rounds

from watchdog.absences import (
    AbsenceRefused,
    effective_absences,
    end_absence,
    list_team_absences,
    register_absence,
)
from watchdog.casestore import Absence, Team, Worker
from watchdog.delivery import Transport
from watchdog.intake.parsing import read_csv_text
from watchdog.intake.schemas import ENTITIES
from watchdog.intake.upsert import import_records

WARNED = at("2025-06-04T09:00")  # the 30-day warning of Town's investigation


def _import_absence(engine, settings, line: str) -> None:
    text = "ext_id;worker;starts_on;ends_on;substitute\n" + line + "\n"
    records = list(read_csv_text(text, ENTITIES["absences"], "fravaer.csv"))
    result = import_records(engine, records, now=at("2025-06-01T06:00"), settings=settings)
    assert not getattr(result, "problems", None)


def test_a_leaders_web_absence_sends_the_next_warning_to_the_substitute(engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-5001")
    session.commit()
    settings = settings_for(smtp_server)
    with Session(engine) as s:
        register_absence(s, leader_id=town.workers["L1"].id, worker_id=town.workers["W1"].id,
                         starts_on=date(2025, 6, 2), ends_on=date(2025, 6, 6), substitute_id=town.workers["W2"].id,
                         now=at("2025-06-02T10:00"))
        s.commit()
    rounds(engine, settings, Transport(settings), WARNED)
    assert smtp_server.to(ANNE) == []
    (to_bo,) = smtp_server.to(BO)
    assert "S-5001" in to_bo.text


def test_the_web_row_wins_over_an_imported_absence_and_an_import_never_touches_it(engine, session, smtp_server):
    town = Town(session)
    town.investigation("S-5002")
    session.commit()
    settings = settings_for(smtp_server)
    with Session(engine) as s:
        web = register_absence(s, leader_id=town.workers["L1"].id, worker_id=town.workers["W1"].id,
                               starts_on=date(2025, 6, 3), ends_on=date(2025, 6, 5),
                               substitute_id=town.workers["W2"].id, now=at("2025-06-02T10:00"))
        s.commit()
        web_id = web.id
    # The case system says Carl (its row is newer than the web one: a later id must not decide).
    _import_absence(engine, settings, "A-77;W1;2025-06-02;2025-06-13;W3")
    _import_absence(engine, settings, "A-77;W1;2025-06-02;2025-06-20;W3")  # the nightly import again
    with Session(engine) as s:
        rows = {a.ext_id: a for a in s.exec(select(Absence)).all()}
        assert rows["A-77"].source == "import" and rows["A-77"].ends_on == date(2025, 6, 20)
        (web_row,) = [a for a in rows.values() if a.source == "web"]
        assert web_row.id == web_id and web_row.ext_id.startswith("web:") and web_row.ends_on == date(2025, 6, 5)
        views = list_team_absences(s, town.team.id, now=at("2025-06-02T10:00"))
        imported = next(v for v in views if v.source == "import")
        assert imported.overridden and not imported.editable
        assert next(v for v in views if v.source == "web").registered_by_name == "Lise Leder"
        with pytest.raises(AbsenceRefused, match="sagssystemet"):
            end_absence(s, leader_id=town.workers["L1"].id, absence_id=rows["A-77"].id, now=at("2025-06-02T10:00"))
    rounds(engine, settings, Transport(settings), WARNED)
    assert smtp_server.to(CARL) == [] and smtp_server.to(ANNE) == []
    (to_bo,) = smtp_server.to(BO)  # the web row's substitute, not the imported one's
    assert "S-5002" in to_bo.text


def test_effective_absences_keep_one_row_per_worker_the_web_one_when_both_apply():
    class Row:
        def __init__(self, id, worker_id, source):
            self.id, self.worker_id, self.source = id, worker_id, source

    rows = [Row(3, 1, "web"), Row(1, 1, "import"), Row(2, 2, "import")]
    assert sorted((r.worker_id, r.source) for r in effective_absences(rows)) == [(1, "web"), (2, "import")]


def test_a_leader_cannot_register_for_another_team_nor_with_wrong_dates_or_substitute(engine, session):
    town = Town(session)
    south = Team(ext_id="T2", name="Team Syd")
    session.add(south)
    session.flush()
    outsider = Worker(ext_id="S1", name="Sune Syd", email="s@kommune.example.dk", team_id=south.id)
    session.add(outsider)
    session.commit()
    now = at("2025-06-10T10:00")
    lise = town.workers["L1"].id

    def refused(**kw):
        args = {"leader_id": lise, "worker_id": town.workers["W1"].id, "starts_on": date(2025, 6, 10),
                "ends_on": date(2025, 6, 12), "substitute_id": None, "now": now, **kw}
        with Session(engine) as s, pytest.raises(AbsenceRefused) as exc:
            register_absence(s, **args)
        return exc.value.errors

    assert set(refused(worker_id=outsider.id)) == {"worker"}
    assert set(refused(ends_on=date(2025, 6, 9))) == {"ends_on"}
    assert "allerede slut" in refused(starts_on=date(2025, 6, 1), ends_on=date(2025, 6, 9))["ends_on"]
    assert set(refused(substitute_id=town.workers["W1"].id)) == {"substitute"}
    assert set(refused(substitute_id=99999)) == {"substitute"}
    assert set(refused(leader_id=town.workers["W2"].id)) == {"worker"}  # a caseworker is no leader
    # A web absence that has begun ends yesterday; one that has not begun is removed.
    with Session(engine) as s:
        begun = register_absence(s, leader_id=lise, worker_id=town.workers["W1"].id, starts_on=date(2025, 6, 9),
                                 ends_on=date(2025, 6, 20), substitute_id=None, now=now)
        coming = register_absence(s, leader_id=lise, worker_id=town.workers["W3"].id, starts_on=date(2025, 6, 16),
                                  ends_on=date(2025, 6, 20), substitute_id=None, now=now)
        assert end_absence(s, leader_id=lise, absence_id=begun.id, now=now).ends_on == date(2025, 6, 9)
        assert end_absence(s, leader_id=lise, absence_id=coming.id, now=now) is None
        assert s.get(Absence, coming.id) is None
