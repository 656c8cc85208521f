"""Stage 1 intake: the documented input format of every entity. Pure: no database, no clock.

One pydantic model per entity (not the table models: SQLModel tables do not validate on
construction). References to other records are the case system's ids (``ext_id``), resolved to
database ids by ``watchdog.intake.upsert``. The same models serve the file import (after the
Danish spreadsheet conventions are converted in ``watchdog.intake.parsing``) and the HTTP API.

The store never holds a CPR number or a child's name: a column/field that looks like one is
refused by name, and every text value that contains a CPR-like number is refused, however it is
written (``watchdog.sensitive`` reads it normalised: other dashes, invisible characters, fullwidth
digits, URL escapes). Single-line values (ids, names, addresses, links) refuse line breaks; every
instant must have a UTC form. What a municipality configures (the plausible range of dates, its
case-number format) is checked by ``watchdog.intake.checks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from watchdog.casestore import (
    Absence,
    Case,
    FollowUp,
    Investigation,
    InvestigationKind,
    Measure,
    MeasureKind,
    Notification,
    SupervisionVisit,
    Team,
    Worker,
    WorkerRole,
)
# SENSITIVE_REASON, is_sensitive_column and normalize_column are used from here by the intake.
from watchdog.sensitive import _CPR, SENSITIVE_REASON, contains_cpr, is_sensitive_column, normalize_column  # noqa: F401
from watchdog.settings_urls import check_teams_url

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Unicode categories Cc (control) and Cs (surrogate), but tab and line breaks: one regex search
# instead of a category lookup per character.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _no_cpr(value: str) -> str:
    # NUL and lone surrogates cannot be stored by PostgreSQL; other control characters are noise.
    bad = _CONTROL.search(value)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad.group()):04X}")
    if "\ufffd" in value:
        raise ValueError("contains U+FFFD, the mark of a character lost when the file was converted; "
                         "export it again as UTF-8 (in Excel: CSV UTF-8)")
    if contains_cpr(value):
        raise ValueError("contains what looks like a CPR number: the store never holds one")
    return value


# A plain text: printable ASCII but "%" and "&", and the Latin-1 letters and "§" of Danish text. On
# such a text ``watchdog.sensitive.normalize`` changes nothing (nothing to unescape or decode, NFKC
# leaves it alone, no character it maps), so ``contains_cpr`` is the CPR pattern's search of the
# text itself; no control character, no U+FFFD and no line break can be in it. Tested against
# ``_no_cpr`` and ``_one_line`` character by character (tests/test_intake_fast_paths.py).
_NOT_PLAIN = re.compile("[^ -$'-~\xa7\xc0-\xd6\xd8-\xf6\xf8-\xff]")
_not_plain = _NOT_PLAIN.search
_cpr_in_plain = _CPR.search


def _plain_text(value: str) -> bool:
    """Whether ``value`` is a plain text (above) without a CPR number: ``_no_cpr`` and
    ``_one_line`` would return it as it is."""
    return _not_plain(value) is None and _cpr_in_plain(value) is None


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("contains a line break (in a CSV file usually an unbalanced quote \" "
                         "that swallowed the rows after it)")
    return value


def _utc_form(value: datetime) -> datetime:
    """An instant must have a UTC form: 9999-12-31T20:00-14:00 is after the last one there is."""
    if value.tzinfo is UTC:
        return value  # already its UTC form (as every instant read from a file is)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the times the service can hold "
                         "(its UTC form is past the year 9999 or before the year 1)") from None
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


def _teams_url(value: str) -> str:
    return check_teams_url(value)


def _text(max_length: int, *checks) -> Any:
    # A plain text passes _no_cpr and _one_line as it is: only the other checks are left for it.
    rest = checks[1:] if checks and checks[0] is _one_line else checks

    def check(value: str) -> str:  # one validator call per value, the checks in their order
        if _not_plain(value) is None and _cpr_in_plain(value) is None:  # _plain_text, inlined
            for c in rest:
                value = c(value)
            return value
        value = _no_cpr(value)
        for c in checks:
            value = c(value)
        return value

    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length),
        AfterValidator(check),
    ]


ExtId = _text(64, _one_line)
Name = _text(200, _one_line)
Email = _text(320, _one_line, _email)
Url = _text(2000, _one_line, _http_url)
TeamsUrl = _text(2000, _one_line, _teams_url)
LegalBasis = _text(200, _one_line)
Exemption = _text(500)
Instant = Annotated[AwareDatetime, AfterValidator(_utc_form)]


class _In(BaseModel):
    """Unknown fields are refused; text is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    def _check_order(self, *pairs: tuple[str, str]) -> None:
        for earlier, later in pairs:
            a, b = getattr(self, earlier), getattr(self, later)
            if a is not None and b is not None and b < a:
                raise ValueError(f"{later} is before {earlier}")


class TeamIn(_In):
    """A team (the unit a leader leads)."""

    ext_id: ExtId = Field(description="The case system's id of the team.")
    name: Name = Field(description="The team's name.")
    duty_email: Email | None = Field(default=None, description="The team's duty address (døgnvagt).")
    duty_teams_url: TeamsUrl | None = Field(default=None, description="The team's Teams workflow URL.")


class WorkerIn(_In):
    """A caseworker, leader, reviewer or administrator."""

    ext_id: ExtId = Field(description="The case system's id of the worker.")
    name: Name = Field(description="The worker's name (shown to leaders and substitutes).")
    email: Email = Field(description="Where the worker's alerts are sent.")
    team: ExtId | None = Field(default=None, description="ext_id of the worker's team.")
    role: WorkerRole = Field(default=WorkerRole.CASEWORKER, description="caseworker, leader, reviewer, admin or head (head of unit).")
    fte: float = Field(default=1.0, ge=0.0, le=1.0, description="Full-time equivalent as a caseworker, 0–1.")
    teams_workflow_url: TeamsUrl | None = Field(default=None, description="Also alert on Teams through this workflow.")
    active: bool = Field(default=True, description="Inactive workers get no alerts.")


class AbsenceIn(_In):
    """A worker's absence and, optionally, who substitutes."""

    ext_id: ExtId = Field(description="The case system's id of the absence.")
    worker: ExtId = Field(description="ext_id of the absent worker.")
    starts_on: date = Field(description="First day of the absence.")
    ends_on: date = Field(description="Last day of the absence (inclusive).")
    substitute: ExtId | None = Field(default=None, description="ext_id of the substitute.")

    @model_validator(mode="after")
    def _consistent(self) -> AbsenceIn:
        self._check_order(("starts_on", "ends_on"))
        if self.substitute is not None and self.substitute == self.worker:
            raise ValueError("substitute is the absent worker")
        return self


class CaseIn(_In):
    """A case (børnesag), known by its case reference only."""

    ext_id: ExtId = Field(description="The case reference in the case system.")
    team: ExtId = Field(description="ext_id of the team that holds the case.")
    worker: ExtId | None = Field(default=None, description="ext_id of the responsible caseworker.")
    birth_date: date | None = Field(default=None, description="Only for the duties counted from the 18th birthday.")
    opened_at: Instant = Field(description="When the case was opened.")
    closed_at: Instant | None = Field(default=None, description="When the case was closed.")
    link: Url | None = Field(default=None, description="Link into the case system (overrides the template).")
    aftercare_decided_at: Instant | None = Field(
        default=None, description="The decision on support after 18 (BL § 111 / SEL § 68, stk. 11).")

    @model_validator(mode="after")
    def _consistent(self) -> CaseIn:
        self._check_order(("opened_at", "closed_at"))
        return self


class NotificationIn(_In):
    """An underretning."""

    ext_id: ExtId = Field(description="The case system's id of the notification.")
    case: ExtId = Field(description="ext_id (case reference) of the case.")
    received_at: Instant = Field(description="When it was received (to the minute).")
    professional_notifier: bool = Field(default=False, description="From a professional (receipt confirmation due).")
    assessed_at: Instant | None = Field(default=None, description="The 24-hour assessment.")
    assessed_by: ExtId | None = Field(default=None, description="ext_id of the worker who assessed it.")
    receipt_confirmed_at: Instant | None = Field(default=None, description="Receipt confirmed to the notifier.")
    child_in_support: bool = Field(default=False, description="The child already receives support or is placed.")
    reassessed_at: Instant | None = Field(default=None, description="The reassessment (genvurdering).")
    reassessment_reasoning_recorded: bool | None = Field(
        default=None, description="The municipality's concrete assessment appears in the reassessment.")
    reassessment_participants: list[ExtId] | None = Field(
        default=None, description="ext_ids of the workers who took part in the reassessment.")

    @model_validator(mode="after")
    def _consistent(self) -> NotificationIn:
        # An assessment before the receipt is implausible but stored: a data-quality warning
        # (watchdog.intake.quality), since the case system is the source of truth.
        self._check_order(("received_at", "reassessed_at"), ("received_at", "receipt_confirmed_at"))
        return self


class InvestigationIn(_In):
    """A børnefaglig undersøgelse."""

    ext_id: ExtId = Field(description="The case system's id of the investigation.")
    case: ExtId = Field(description="ext_id of the case.")
    notification: ExtId | None = Field(default=None, description="ext_id of the notification that started it.")
    kind: InvestigationKind = Field(default=InvestigationKind.NEW, description="new, or update of an earlier one.")
    aware_at: Instant = Field(description="The municipality became aware the child may need support.")
    completed_at: Instant | None = Field(default=None, description="When it was completed.")
    interim_assessed_at: Instant | None = Field(default=None, description="The foreløbig vurdering.")

    @model_validator(mode="after")
    def _consistent(self) -> InvestigationIn:
        # A completion before the awareness is stored with a data-quality warning (intake.quality).
        return self


class MeasureIn(_In):
    """A decision on a measure (afgørelse om foranstaltning/indsats)."""

    ext_id: ExtId = Field(description="The case system's id of the decision.")
    case: ExtId = Field(description="ext_id of the case.")
    kind: MeasureKind = Field(description="support, placement_consent, placement_no_consent, youth_crime or other.")
    legal_basis: LegalBasis = Field(description='The paragraph, e.g. "BL § 32, stk. 1, nr. 3".')
    decided_at: Instant = Field(description="When it was decided.")
    effected_at: Instant | None = Field(default=None, description="When it was effected (iværksat).")
    ended_at: Instant | None = Field(default=None, description="When it ended.")
    investigation: ExtId | None = Field(default=None, description="ext_id of an investigation run alongside.")
    child_conversation_at: Instant | None = Field(default=None, description="The child conversation.")
    child_conversation_exemption: Exemption | None = Field(
        default=None, description="Why no child conversation was held (lawful reason).")
    plan_at: Instant | None = Field(default=None, description="The plan (handleplan/barnets plan).")
    plan_required: bool = Field(default=True, description="Whether a plan is required.")

    @model_validator(mode="after")
    def _consistent(self) -> MeasureIn:
        self._check_order(("decided_at", "ended_at"))
        return self


class FollowUpIn(_In):
    """An opfølgning on a measure."""

    ext_id: ExtId = Field(description="The case system's id of the follow-up.")
    measure: ExtId = Field(description="ext_id of the measure followed up.")
    performed_at: Instant = Field(description="When the follow-up was made.")
    next_planned_on: date | None = Field(default=None, description="The next follow-up as decided (BL § 95, stk. 3).")


class VisitIn(_In):
    """A tilsynsbesøg with a placed child."""

    ext_id: ExtId = Field(description="The case system's id of the visit.")
    measure: ExtId = Field(description="ext_id of the placement measure.")
    visited_at: Instant = Field(description="When the visit took place.")
    child_conversation: bool = Field(default=True, description="Whether the child was spoken with.")


@dataclass(frozen=True)
class EntitySpec:
    """One importable entity: its input model, its table, and how its references map to columns."""

    name: str
    model: type[_In]
    table: type
    aliases: tuple[str, ...]
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (entity, column)
    description: str = ""

    @property
    def fields(self) -> list[str]:
        return list(self.model.model_fields)


# In dependency order: every entity refers only to entities before it.
ENTITIES: dict[str, EntitySpec] = {spec.name: spec for spec in (
    EntitySpec("teams", TeamIn, Team, ("team", "teams", "hold")),
    EntitySpec("workers", WorkerIn, Worker, ("worker", "workers", "medarbejdere", "medarbejder"),
               {"team": ("teams", "team_id")}),
    EntitySpec("absences", AbsenceIn, Absence, ("absence", "absences", "fravaer", "fravær"),
               {"worker": ("workers", "worker_id"), "substitute": ("workers", "substitute_id")}),
    EntitySpec("cases", CaseIn, Case, ("case", "cases", "sager", "sag"),
               {"team": ("teams", "team_id"), "worker": ("workers", "worker_id")}),
    EntitySpec("notifications", NotificationIn, Notification,
               ("notification", "notifications", "underretninger", "underretning"),
               {"case": ("cases", "case_id"), "assessed_by": ("workers", "assessed_by_id")}),
    EntitySpec("investigations", InvestigationIn, Investigation,
               ("investigation", "investigations", "undersoegelser", "undersøgelser", "bfu"),
               {"case": ("cases", "case_id"), "notification": ("notifications", "notification_id")}),
    EntitySpec("measures", MeasureIn, Measure,
               ("measure", "measures", "foranstaltninger", "indsatser", "afgoerelser", "afgørelser"),
               {"case": ("cases", "case_id"), "investigation": ("investigations", "investigation_id")}),
    EntitySpec("follow_ups", FollowUpIn, FollowUp,
               ("follow_up", "follow_ups", "followup", "followups", "opfoelgninger", "opfølgninger"),
               {"measure": ("measures", "measure_id")}),
    EntitySpec("visits", VisitIn, SupervisionVisit,
               ("visit", "visits", "supervision_visits", "tilsyn", "tilsynsbesoeg", "tilsynsbesøg"),
               {"measure": ("measures", "measure_id")}),
)}
ENTITY_ORDER: list[str] = list(ENTITIES)
# Reassessment participants are a list field of a notification, stored in their own table.
PARTICIPANTS_FIELD = "reassessment_participants"


def entity_by_alias(name: str) -> EntitySpec | None:
    norm = normalize_column(name)
    for spec in ENTITIES.values():
        if norm in spec.aliases or norm == spec.name:
            return spec
    return None


def entity_from_filename(stem: str) -> EntitySpec | None:
    """``cases.csv``, ``2024-11-cases.xlsx``, ``sager_uge47.csv`` → the entity; None if unclear."""
    norm = normalize_column(stem)
    exact = entity_by_alias(norm)
    if exact:
        return exact
    found = {spec.name for spec in ENTITIES.values() for alias in spec.aliases
             if norm.startswith(alias + "_") or norm.endswith("_" + alias) or f"_{alias}_" in norm}
    return ENTITIES[found.pop()] if len(found) == 1 else None


def field_kind(model: type[BaseModel], name: str) -> str:
    """How a spreadsheet cell for this field is read: text, date, instant, bool, decimal or list."""
    return _kind(model.model_fields[name].annotation)


def _kind(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return _kind(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is list:
        return "list"
    if annotation is bool:
        return "bool"
    if annotation is datetime or annotation is AwareDatetime:
        return "instant"
    if annotation is date:
        return "date"
    if annotation is float:
        return "decimal"
    return "text"
