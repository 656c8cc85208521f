"""Settings: one validated class, built by ``load_settings()`` at start-up, never at import.

Precedence (highest first): arguments (CLI options) > environment (``WATCHDOG_`` prefix, ``__``
for nesting) > ``.env`` > the TOML file (``config/watchdog.toml``, or ``--config`` /
``WATCHDOG_CONFIG``) > defaults. Secrets are ``SecretStr``; each also reads ``*_file`` (a path to
a file holding it, for container secrets). Unknown keys are refused.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from watchdog.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/watchdog.toml")

_LEGACY_TEAMS_HINT = (
    "Office 365 connector URLs (msteams://, …webhook.office.com/…) were retired by Microsoft; "
    "create a Teams workflow in Power Automate and use its URL as workflows://HOST/WORKFLOW/SIGNATURE "
    "(add ?pa=yes for Power Automate) or the native https://…/workflows/… URL"
)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_teams_url(url: str) -> str:
    """Refuse a retired connector URL with a message that says what to use instead."""
    lowered = url.strip().lower()
    if lowered.startswith("msteams://") or "webhook.office.com" in lowered or "/incomingwebhook/" in lowered:
        raise ValueError(f"legacy Teams connector URL refused: {_LEGACY_TEAMS_HINT}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "workflows":
        return url
    if scheme == "https" and "/workflows/" in lowered:
        return url
    raise ValueError(
        f"not a Teams workflow URL: {url.split('?')[0]!r}; use workflows://HOST/WORKFLOW/SIGNATURE "
        "or the https://…/workflows/… URL of a Power Automate workflow"
    )


def check_apprise_url(url: str) -> str:
    """Validate an operator/heartbeat notification URL: known schemes, no clear-text passwords."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(f"not a URL (no scheme): {url!r}")
    if scheme == "msteams" or "webhook.office.com" in url.lower():
        return check_teams_url(url)
    if scheme == "mailto" and parts.password and not is_loopback(parts.hostname):
        raise ValueError(
            "a password over plain mailto:// to a host that is not loopback would travel in clear "
            "text; use mailtos:// with mode=starttls or mode=ssl"
        )
    return url


def parse_ops_url(url: str) -> tuple[str, str] | None:
    """Where an operator URL points: ``(address, "teams" | "email")``, or None if unusable.

    A Teams workflow URL is used as it is. A ``mailto://``/``mailtos://`` URL names the mailbox
    (``mailto://ops@kommune.dk``, ``mailto://relay/ops@kommune.dk`` or ``?to=ops@kommune.dk``);
    the mail goes through the configured SMTP relay like every other email.
    """
    from urllib.parse import parse_qs, unquote

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "workflows" or (scheme == "https" and "/workflows/" in url.lower()):
        return url, "teams"
    if scheme not in ("mailto", "mailtos"):
        return None
    to = parse_qs(parts.query).get("to")
    if to:
        return to[0].split(",")[0].strip(), "email"
    in_path = [p for p in unquote(parts.path).split("/") if "@" in p]
    if in_path:
        return in_path[0], "email"
    if parts.username and not parts.password and parts.hostname and "." in parts.hostname:
        return f"{unquote(parts.username)}@{parts.hostname}", "email"
    return None


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


class Settings(BaseSettings):
    """The whole configuration. See config/watchdog.example.toml for every key and its default."""

    model_config = SettingsConfigDict(
        env_prefix="WATCHDOG_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        # "ignore", not "forbid": an unrelated line in .env must not stop start-up. Unknown keys
        # in the TOML file are refused by load_settings(); nested sections forbid extras.
        extra="ignore",
        validate_default=True,
    )

    database_url: SecretStr = SecretStr("sqlite:///watchdog.db")
    municipality: str = "Kommune"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    smtp: SmtpSettings = SmtpSettings()
    alerts: AlertSettings = AlertSettings()
    delivery: DeliverySettings = DeliverySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    intake: IntakeSettings = IntakeSettings()
    http: HttpSettings = HttpSettings()
    web: WebSettings = WebSettings()

    @model_validator(mode="after")
    def _demo_login_only_on_loopback(self) -> Settings:
        # The demo sign-in lets anyone pick any worker: never on an address others can reach.
        if self.web.demo_login and not is_loopback(self.http.host):
            raise ValueError(
                f"web.demo_login lets anyone sign in as any worker and is allowed only when http.host is "
                f"loopback (127.0.0.1), not {self.http.host!r}; configure OpenID Connect (web.oidc_issuer)")
        if not self.web.secure_cookies and not is_loopback(self.http.host):
            raise ValueError("web.secure_cookies = false is allowed only when http.host is loopback")
        return self

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
            raise ValueError(
                "database_url must be sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
                f"(got scheme {scheme or 'none'!r})"
            )
        if scheme == "postgresql":
            value = SecretStr("postgresql+psycopg://" + raw.split("://", 1)[1])
        return value

    # The TOML path is chosen per load (``--config``), so it is passed through a class attribute
    # set by load_settings() just before construction.
    _toml_path: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        path = cls._toml_path
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def database_url_value(self) -> str:
        return self.database_url.get_secret_value()

    def masked(self) -> dict[str, Any]:
        """The resolved configuration with every secret masked (for check-config and logs)."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_url(self.database_url_value)
        data["delivery"]["ops_urls"] = [mask_url(u) for u in self.delivery.ops_urls]
        if self.http.heartbeat_url:
            data["http"]["heartbeat_url"] = mask_url(self.http.heartbeat_url)
        for name in ("oidc_client_secret", "session_secret"):
            if data["web"].get(name):
                data["web"][name] = "********"
        return data


# Query parameters that carry a secret (a heartbeat's ?token=, a signature): the same names the
# log masker hides (watchdog.ops.logs.known_secrets).
SECRET_QUERY_KEYS = ("sig", "signature", "token", "access_token", "apikey", "api_key", "key", "password",
                     "pass", "secret")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:" + "|".join(SECRET_QUERY_KEYS) + r")=)[^&#]+")


def mask_url(url: str) -> str:
    """Hide the password of a URL, its secret query parameters (``?token=``) and the secret path
    of a Teams workflow."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":********@")
        url = url.replace(parts.netloc, netloc, 1)
    if parts.scheme.lower() == "workflows" or "/workflows/" in url.lower():
        base = url.split("?", 1)[0]
        head, _, _secret = base.rpartition("/")
        url = head + "/********"
    return _SECRET_QUERY.sub(r"\1********", url)


def resolve_config_path(config_path: str | Path | None) -> Path | None:
    """``--config`` beats ``WATCHDOG_CONFIG`` beats ``config/watchdog.toml`` (if it exists)."""
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}")
        return path
    env = os.environ.get("WATCHDOG_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path} (from WATCHDOG_CONFIG)")
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError with one line naming the bad key and why."""
    from watchdog.settings_sources import refuse_misspelt_variables

    refuse_misspelt_variables()  # WATCHDOG_DATABSE_URL would otherwise be ignored without a word
    path = resolve_config_path(config_path)
    if path is not None:
        _refuse_unknown_top_level_keys(path)
    Settings._toml_path = path
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path)) from None
    except (OSError, ValueError) as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    finally:
        Settings._toml_path = None


def _refuse_unknown_top_level_keys(path: Path) -> None:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (in {path})")


def describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f" (in {path} or the environment)" if path else ""
    if err["type"] == "extra_forbidden":
        return f"unknown setting {loc!r}{where}"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    if not loc:  # a rule across sections (its message names the settings it concerns)
        return f"invalid configuration{where}: {msg}{more}"
    return f"invalid setting {loc!r}: {msg}{more}"
