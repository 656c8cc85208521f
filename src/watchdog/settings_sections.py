"""The sections of the settings (``[smtp]``, ``[alerts]``, ``[delivery]``, ``[schedule]``,
``[intake]``, ``[http]``, ``[web]``): each a validated model with its defaults; ``watchdog.settings``
puts them together and loads them. Pure; no I/O beyond a ``password_file``."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from watchdog.settings_urls import check_apprise_url, check_teams_url, is_loopback, mask_url, parse_ops_url
def _password_from_file(section) -> None:
    """Fill ``section.password`` from ``section.password_file`` (container secrets) if not given."""
    if section.password is None and section.password_file is not None:
        try:
            secret = section.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"password_file {str(section.password_file)!r} cannot be read: {exc.strerror}")
        object.__setattr__(section, "password", SecretStr(secret))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SmtpSettings(_Section):
    """The SMTP relay every email goes through."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    mode: Literal["plain", "starttls", "ssl"] = "plain"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    from_address: str = "frister@kommune.example.dk"
    from_name: str = "Frister (watchdog)"
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    verify_tls: bool = True  # check the relay's certificate (starttls/ssl); off only for tests
    # Within a delivery round one connection carries this many messages, then a new one is opened
    # (a relay may cap messages per connection); 1: a connection per message.
    messages_per_connection: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _secret_and_transport(self) -> SmtpSettings:
        _password_from_file(self)
        if self.password is not None and self.mode == "plain" and not is_loopback(self.host):
            raise ValueError(
                f"an SMTP password over plain SMTP to {self.host} (not loopback) would travel in clear "
                "text; set smtp.mode to 'starttls' or 'ssl'"
            )
        if "@" not in self.from_address:
            raise ValueError(f"from_address {self.from_address!r} is not an email address")
        return self


class LadderSettings(_Section):
    """When warnings go out before each duty's due time.

    Each entry is an offset before the due time: "30d", "4h", "90m"; "receipt" means as soon as
    the clock starts. Duties not listed use ``default``.
    """

    assessment_24h: list[str] = ["receipt", "4h"]
    reassessment: list[str] = ["receipt", "1d"]
    investigation_4m: list[str] = ["30d", "14d", "7d", "2d"]
    follow_up: list[str] = ["14d", "3d"]
    receipt_confirmation: list[str] = ["2d"]
    child_conversation: list[str] = ["7d"]
    plan: list[str] = ["14d", "3d"]
    supervision_visit: list[str] = ["30d", "7d"]
    aftercare_decision: list[str] = ["60d", "14d"]

    @field_validator("*")
    @classmethod
    def _offsets(cls, value: list[str]) -> list[str]:
        from watchdog.durations import parse_offset

        for item in value:
            parse_offset(item)  # raises ValueError with the bad item
        return value


class AlertSettings(_Section):
    """Alert policy: the warning ladder, escalation, working hours, routing."""

    ladder: LadderSettings = LadderSettings()
    escalate_on_breach: bool = True
    # While a breach stays open the caseworker is reminded this many days after the due time,
    # then every ``reminder_repeat_days`` after the last of them (0 = no more): a decaying cadence.
    reminder_days: list[int] = [1, 7, 14]
    reminder_repeat_days: int = Field(default=14, ge=0, le=365)
    # A deadline first computed when it had been breached for more than this many days (go-live,
    # a backfill of old cases) is not escalated one by one: the leaders get one backlog summary.
    backlog_days: int = Field(default=14, ge=0, le=3650)
    # After this many days a breach still open goes to the head of unit (workers with role
    # ``head``) and ``second_escalation_addresses`` (emails or Teams workflow URLs). None = off.
    second_escalation_days: int | None = Field(default=None, ge=1, le=3650)
    second_escalation_addresses: list[str] = []
    # Every list in a message (and in the weekly digest) shows at most this many items, then
    # "og N flere" with a link to the full list, so a message stays short however large the backlog.
    max_items_per_section: int = Field(default=15, ge=1, le=100)
    working_hours_start: int = Field(default=8, ge=0, le=23)  # local hour, inclusive
    working_hours_end: int = Field(default=16, ge=1, le=24)  # local hour, exclusive
    # The statute sets no time limit for the reassessment (genvurdering): municipal policy.
    reassessment_policy_days: int = Field(default=7, ge=1, le=90)
    reviewers: list[str] = []  # worker ext_ids who receive every reassessment warning
    case_link_template: str = "https://sagssystem.kommune.example.dk/sag/{case_ref}"
    # "Jeg er på sagen": the latest end date a person may choose, in days from today.
    ack_max_days: int = Field(default=14, ge=1, le=90)

    @field_validator("case_link_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{case_ref}" not in value:
            raise ValueError("case_link_template must contain {case_ref}")
        if not value.startswith(("https://", "http://")):
            raise ValueError("case_link_template must be an http(s) URL")
        return value

    @field_validator("reminder_days")
    @classmethod
    def _reminder_days(cls, value: list[int]) -> list[int]:
        if any(d < 1 or d > 3650 for d in value):
            raise ValueError("reminder_days must be whole days after the due time, 1 or more")
        if value != sorted(set(value)):
            raise ValueError("reminder_days must be increasing, e.g. [1, 7, 14]")
        return value

    @field_validator("second_escalation_addresses")
    @classmethod
    def _second_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "://" in address:
                check_teams_url(address)
            elif "@" not in address:
                raise ValueError(f"second_escalation_addresses: {address!r} is neither an email "
                                 "address nor a Teams workflow URL")
        return value

    @model_validator(mode="after")
    def _hours(self) -> AlertSettings:
        if self.working_hours_end <= self.working_hours_start:
            raise ValueError("working_hours_end must be after working_hours_start")
        return self


class DeliverySettings(_Section):
    """The outbox: retries, claims, and where dead letters are reported."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_seconds: int = Field(default=60, ge=1)
    backoff_max_seconds: int = Field(default=6 * 3600, ge=1)
    claim_timeout_seconds: int = Field(default=300, ge=10)
    batch_size: int = Field(default=200, ge=1, le=10000)
    ops_urls: list[str] = []  # Apprise URLs for operator alerts (dead letters)
    teams_verify_tls: bool = True  # only for tests against a self-signed receiver

    @field_validator("ops_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            check_apprise_url(url)
            if parse_ops_url(url) is None:
                raise ValueError(
                    f"cannot send operator alerts to {mask_url(url)!r}: use a Teams workflow URL "
                    "(workflows://… or https://…/workflows/…) or mailto://MAILBOX (sent through [smtp])")
        return value


class ScheduleSettings(_Section):
    poll_interval_seconds: int = Field(default=300, ge=10)
    delivery_interval_seconds: int = Field(default=30, ge=5)
    digest_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    digest_hour: int = Field(default=7, ge=0, le=23)
    digest_minute: int = Field(default=0, ge=0, le=59)
    misfire_grace_seconds: int = Field(default=3600, ge=1)


class SqlSourceSettings(_Section):
    """One ``[[intake.sql_sources]]``: a case system's reporting database, read on a schedule."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # A SQLAlchemy URL without the password, e.g. mysql+pymysql://watchdog_read@db.kommune.dk/rapport.
    url: str
    password: SecretStr | None = None
    password_file: Path | None = None
    mapping: Path  # the TOML mapping: per entity a view or query, its change column, the columns
    overlap_seconds: int = Field(default=900, ge=0)  # re-read this far back (late commits)
    overlap_versions: int = Field(default=1000, ge=0)  # the same for an integer change column
    full_read_hour: int = Field(default=2, ge=0, le=23)  # the nightly full re-read, local hour

    @model_validator(mode="after")
    def _secret(self) -> SqlSourceSettings:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise ValueError(f"sql source {self.name!r}: url is not a SQLAlchemy URL") from None
        if parsed.password:
            raise ValueError(f"sql source {self.name!r}: put the password in password or password_file "
                             "(a secret), not in the url")
        _password_from_file(self)
        return self


class IntakeSettings(_Section):
    # Alert the leaders when no notification has been registered for this many working days.
    silence_working_days: int = Field(default=2, ge=1, le=60)
    max_request_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_batch_records: int = Field(default=10_000, ge=1)
    # Dates and instants before earliest_date, or more than latest_years_ahead years after the day
    # of the import, are refused as typing errors (a year 9999 would overflow the deadline arithmetic).
    earliest_date: date = date(1990, 1, 1)
    latest_years_ahead: int = Field(default=10, ge=1, le=100)
    # A regular expression every case reference must match in full, e.g. 'S-\d{4}-\d{4,6}': refuses
    # anything else, such as a child's name typed into the reference field. Unset: any reference.
    case_ref_pattern: str | None = None

    @field_validator("case_ref_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"case_ref_pattern is not a regular expression: {exc}") from None
        return value

    # Sources the service polls by itself (watchdog.intake.sources).
    drop_folder: Path | None = None
    drop_poll_seconds: int = Field(default=60, ge=1)
    drop_marker_suffix: str = Field(default=".done", min_length=1)
    drop_mapping: Path | None = None
    sql_poll_seconds: int = Field(default=300, ge=1)
    sql_sources: list[SqlSourceSettings] = []
    source_max_age_hours: int = Field(default=26, ge=1)
    source_claim_seconds: int = Field(default=1800, ge=10)

    @field_validator("sql_sources")
    @classmethod
    def _unique_names(cls, value: list[SqlSourceSettings]) -> list[SqlSourceSettings]:
        names = [s.name for s in value]
        for name in names:
            if names.count(name) > 1 or name == "drop-folder":
                raise ValueError(f"sql source name {name!r} is used twice (or is the drop folder's)")
        return value


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    health_port: int = Field(default=9108, ge=0, le=65535)  # served by `watchdog run`; 0 = off
    ready_max_poll_age_seconds: int = Field(default=900, ge=10)
    heartbeat_url: str | None = None  # called after every successful round
    # `watchdog serve`: an idle kept-alive connection is closed after this many seconds, and a
    # request whose body stalls this long gets 408 (a slow client cannot hold a connection for ever).
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    body_timeout_seconds: float = Field(default=30, gt=0, le=600)


class WebSettings(_Section):
    """The web app (`watchdog serve`): its address, sign-in and sessions."""

    # The address people use to reach the web app (`watchdog serve`), e.g. https://frister.kommune.dk.
    # Messages link to its pages (a leader's full list); unset, they say where to look instead.
    base_url: str | None = None
    # OpenID Connect sign-in (Microsoft Entra ID: https://login.microsoftonline.com/TENANT/v2.0).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_client_secret_file: Path | None = None
    oidc_scopes: str = "openid email profile"
    # Which claim of the ID token names the person: matched to a worker's email (case-insensitive).
    # Entra ID: "email" needs the optional claim; "preferred_username" is the UPN and always present.
    oidc_claim: str = "email"
    # A local sign-in that lists the workers: for the demo only, refused unless the server listens on loopback.
    demo_login: bool = False
    # Signs the session cookie. Unset: a random key per process (sessions end at a restart; set one
    # shared key when several replicas serve the web app).
    session_secret: SecretStr | None = None
    session_secret_file: Path | None = None
    idle_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # The session cookie is sent only over HTTPS; off only for plain http on loopback (the demo).
    secure_cookies: bool = True

    @model_validator(mode="after")
    def _secrets(self) -> WebSettings:
        for name in ("oidc_client_secret", "session_secret"):
            path = getattr(self, f"{name}_file")
            if getattr(self, name) is None and path is not None:
                try:
                    secret = path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{name}_file {str(path)!r} cannot be read: {exc.strerror}")
                object.__setattr__(self, name, SecretStr(secret))
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("web.oidc_issuer is set but web.oidc_client_id is not")
        if self.session_secret is not None and len(self.session_secret.get_secret_value()) < 32:
            raise ValueError("web.session_secret must be at least 32 characters")
        return self

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"web.base_url must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")
