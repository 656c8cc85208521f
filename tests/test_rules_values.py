"""``rules.types.fast_init``: the rules' value types keep the behaviour of frozen dataclasses with
a faster constructor (a national recompute builds millions of them)."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from watchdog.rules.facts import CaseFacts, MeasureFacts, NotificationFacts
from watchdog.rules.status import Instance
from watchdog.rules.types import ComputedDeadline, Duty, Regime, Status, SubjectKind, fast_init

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def deadline(**changes) -> ComputedDeadline:
    values = dict(duty=Duty.FOLLOW_UP, case_id=1, subject_kind=SubjectKind.MEASURE, subject_id=5, seq=2,
                  regime=Regime.BL, citation="BL § 95", clock_start=NOW, due=NOW, status=Status.OPEN)
    return ComputedDeadline(**(values | changes))


def test_defaults_keywords_positions_and_the_derived_key():
    d = deadline()
    assert (d.met_at, d.note, d.municipal_policy, d.responsible_worker_id) == (None, None, False, None)
    assert d.key == "follow_up:measure:5:2"
    positional = ComputedDeadline(Duty.FOLLOW_UP, 1, SubjectKind.MEASURE, 5, 2, Regime.BL, "BL § 95", NOW, NOW,
                                  Status.OPEN)
    assert positional == d and hash(positional) == hash(d) and positional.key == d.key
    assert deadline(note="x") != d
    assert dataclasses.replace(d, seq=3).key == "follow_up:measure:5:3"


def test_they_stay_frozen():
    d = deadline()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.status = Status.MET  # type: ignore[misc]
    facts = NotificationFacts(id=1, received_at=NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.assessed_at = NOW  # type: ignore[misc]


def test_missing_and_unknown_arguments_are_refused_as_before():
    with pytest.raises(TypeError):
        ComputedDeadline(duty=Duty.FOLLOW_UP)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        NotificationFacts(id=1, received_at=NOW, colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("cls", [ComputedDeadline, Instance, NotificationFacts, MeasureFacts, CaseFacts])
def test_the_signature_is_the_dataclass_one(cls):
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    assert params == [f.name for f in dataclasses.fields(cls) if f.init]


def test_only_frozen_slotted_dataclasses_are_accepted():
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    with pytest.raises(TypeError, match="slots"):
        fast_init(NoSlots)
