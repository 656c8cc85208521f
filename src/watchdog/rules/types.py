"""The contract of the deadline rules: duties, regimes, statuses, and a computed deadline.

Pure: no database, no clock, no network. Every other stage (store, alerts, reports, API) speaks
in these types, so a duty's id here is the id everywhere.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from enum import StrEnum


def fast_init(cls):
    """Give a frozen, slotted dataclass a faster ``__init__`` with the same parameters.

    A frozen dataclass's generated ``__init__`` stores each field with
    ``object.__setattr__(self, name, value)``, which looks the slot up by name every time; a
    national recompute builds about three million of these values (facts, instances, computed
    deadlines), and those lookups were a tenth of it. This one stores through the slots'
    descriptors, bound once. The instances stay frozen (assignment still raises
    ``FrozenInstanceError``), compare and hash as before; ``__post_init__`` still runs.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init needs a frozen dataclass with slots=True, not {cls.__name__}")
    env: dict[str, object] = {}
    args, body = [], []
    for f in fields(cls):
        if not f.init:
            continue
        if f.default_factory is not MISSING:  # pragma: no cover - none of ours has one
            raise TypeError(f"fast_init: {cls.__name__}.{f.name} has a default_factory")
        env[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is MISSING:
            args.append(f.name)
        else:
            env[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    namespace: dict[str, object] = {}
    exec(f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"]), env, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init
    return cls


class Duty(StrEnum):
    ASSESSMENT_24H = "assessment_24h"
    REASSESSMENT = "reassessment"
    INVESTIGATION_4M = "investigation_4m"
    FOLLOW_UP = "follow_up"
    RECEIPT_CONFIRMATION = "receipt_confirmation"
    CHILD_CONVERSATION = "child_conversation"
    PLAN = "plan"
    SUPERVISION_VISIT = "supervision_visit"
    AFTERCARE_DECISION = "aftercare_decision"


class Regime(StrEnum):
    SEL = "SEL"  # Serviceloven: clock started before 2024-01-01 00:00 Europe/Copenhagen
    BL = "BL"  # Barnets lov: clock started on or after that instant


class Status(StrEnum):
    OPEN = "open"
    MET = "met"
    MET_LATE = "met_late"
    BREACHED = "breached"
    EXCEPTED = "excepted"  # "Nej, men lovlig grund": lawful reason recorded
    NOT_APPLICABLE = "not_applicable"

    @property
    def is_final(self) -> bool:
        return self in (Status.MET, Status.MET_LATE, Status.NOT_APPLICABLE)


class SubjectKind(StrEnum):
    """Which case-store record a deadline is about."""

    NOTIFICATION = "notification"
    INVESTIGATION = "investigation"
    MEASURE = "measure"
    CASE = "case"


@fast_init
@dataclass(frozen=True, slots=True)
class ComputedDeadline:
    """One instance of one legal duty, as the rules compute it from the case facts and ``now``.

    ``due`` depends only on the facts and the law; ``status`` also on ``now``.
    ``seq`` numbers the instances of a recurring duty (follow-up 0, 1, 2 …; visits per period).
    """

    duty: Duty
    case_id: int
    subject_kind: SubjectKind
    subject_id: int
    seq: int
    regime: Regime
    citation: str
    clock_start: datetime
    due: datetime
    status: Status
    met_at: datetime | None = None
    exception_reason: str | None = None
    responsible_worker_id: int | None = None
    municipal_policy: bool = False  # due time set by municipal policy, not the statute ("kommunal frist")
    note: str | None = None
    #: The rule's instance it was settled from (``rules.status.Instance``): its facts' instants give
    #: the deadline's history (``rules.status.history``) when the outcome log needs it.
    origin: object | None = field(default=None, repr=False, compare=False)
    #: Stable identity across recomputations: the same duty instance always has the same key.
    #: Derived, computed once (a national recompute asks for it about a million times).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set_key(self, deadline_key(self.duty, self.subject_kind, self.subject_id, self.seq))


def deadline_key(duty: Duty, subject_kind: SubjectKind, subject_id: int, seq: int) -> str:
    """A duty instance's stable identity (``ComputedDeadline.key``)."""
    return f"{duty._value_}:{subject_kind._value_}:{subject_id}:{seq}"


_set_key = ComputedDeadline.__dict__["key"].__set__
