"""The recompute's cheap reads (``watchdog.typed_rows``) give exactly the values SQLAlchemy's column
types give, and pausing the garbage collector for a batch leaves it as it was. Real database
(SQLite or PostgreSQL)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from conftest import at
from watchdog.casestore import Case, FollowUp, Investigation, Measure, Notification, SupervisionVisit
from watchdog.deadline_writer import read_stored
from watchdog.deadlines import Deadline
from watchdog.recompute import poll_deadlines, refresh_deadlines
from watchdog.settings import load_settings
from watchdog.typed_rows import typed_rows

SETTINGS = load_settings()
NOW = at("2026-03-02 09:00")


@pytest.fixture
def municipality(session):
    from watchdog.demo_data import Scale, generate, populate

    populate(session, generate(5, NOW, Scale(cases=120, caseworkers=6, teams=2)))
    session.commit()
    poll_deadlines(session, now=NOW, settings=SETTINGS)
    session.commit()


def _every_column(table) -> list:
    return list(table.__table__.c)


@pytest.mark.parametrize("table", [Case, Notification, Investigation, Measure, FollowUp, SupervisionVisit, Deadline])
def test_typed_rows_give_what_sqlalchemy_gives_value_for_value(session, municipality, table):
    query = select(*_every_column(table)).order_by(table.id)
    expected = [tuple(row) for row in session.execute(query).all()]
    got = typed_rows(session.connection(), query)
    assert len(got) == len(expected) > 0
    assert got == expected
    # Same types too (== would let 1 pass for True, a naive instant would not even compare).
    for got_row, expected_row in zip(got, expected):
        assert [type(v) for v in got_row] == [type(v) for v in expected_row]
        assert all(v.tzinfo is UTC for v in got_row if isinstance(v, datetime))


def test_typed_rows_of_an_empty_result_and_of_a_join(session, municipality):
    assert typed_rows(session.connection(), select(Case.id).where(Case.id < 0)) == []
    query = (select(FollowUp.id, FollowUp.performed_at, Measure.kind).join(Measure, Measure.id == FollowUp.measure_id)
             .order_by(FollowUp.id))
    assert typed_rows(session.connection(), query) == [tuple(r) for r in session.execute(query).all()]


def test_stored_rows_are_named_tuples_with_sqlalchemys_values(session, municipality):
    query = select(Deadline.id, Deadline.key, Deadline.status, Deadline.due, Deadline.met_at).order_by(Deadline.id)
    rows = read_stored(session, query)
    assert rows == [tuple(r) for r in session.execute(query).all()]
    assert rows[0].key == rows[0][1] and rows[0].status == rows[0][2]


def test_the_collector_is_back_on_after_a_recompute_and_left_off_if_it_was_off(session, municipality):
    assert gc.isenabled()
    refresh_deadlines(session, now=at("2026-03-02 10:00"), settings=SETTINGS)
    assert gc.isenabled()
    session.rollback()
    gc.disable()
    try:
        refresh_deadlines(session, now=at("2026-03-02 10:00"), settings=SETTINGS)
        assert not gc.isenabled()
    finally:
        gc.enable()
    session.rollback()


def test_the_collector_is_back_on_when_a_batch_raises(session, municipality, monkeypatch):
    from watchdog import recompute

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(recompute, "load_case_facts", broken)
    with pytest.raises(RuntimeError):
        refresh_deadlines(session, now=at("2026-03-02 10:00"), settings=SETTINGS)
    assert gc.isenabled()
    session.rollback()
