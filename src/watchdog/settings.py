"""Settings: one validated class, built by ``load_settings()`` at start-up, never at import.

Precedence (highest first): arguments (CLI options) > environment (``WATCHDOG_`` prefix, ``__``
for nesting) > ``.env`` > the TOML file (``config/watchdog.toml``, or ``--config`` /
``WATCHDOG_CONFIG``) > defaults. Secrets are ``SecretStr``; each also reads ``*_file`` (a path to
a file holding it, for container secrets). Unknown keys are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from watchdog.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/watchdog.toml")

from watchdog.settings_sections import (
    AlertSettings, DeliverySettings, HttpSettings, IntakeSettings, ScheduleSettings, SmtpSettings, WebSettings,
)
from watchdog.settings_urls import is_loopback, mask_url

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
