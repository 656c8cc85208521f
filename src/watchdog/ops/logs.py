"""Logging set-up: plain text or JSON lines, with secrets masked as a last line of defence.

I/O: writes log records to a stream (stderr by default). Called once at start-up by the CLI.

``settings.log_format = "json"`` gives one JSON object per line: ``ts`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, then any ``extra={...}`` fields and ``exc`` for a traceback.
Code should never log a secret in the first place; the masking here catches what slips through:
every secret known from the settings (the database password, the SMTP password, passwords and
tokens in operator and heartbeat URLs) and, by pattern, any URL password, any Teams workflow
signature (``workflows://…/SIGNATURE``, ``sig=…``) and any ``password=…`` pair.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO
from urllib.parse import urlsplit

from watchdog.settings_urls import SECRET_QUERY_KEYS

MASK = "********"
_HANDLER_NAME = "watchdog-ops"

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRS = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime",
                                                                                      "taskName"}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:PASSWORD@host
    (re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#\s@'\"]*:)(?P<secret>[^@/\s'\"]+)(?=@)"), MASK),
    # workflows://host[:port]/workflow/SIGNATURE
    (re.compile(r"(?P<head>workflows://[^/\s'\"]+/[^/\s'\"?]+/)(?P<secret>[^/\s'\"?&]+)", re.I), MASK),
    # Power Automate / Logic Apps signed URLs: …&sig=SIGNATURE
    (re.compile(r"(?P<head>[?&]sig=)(?P<secret>[^&\s'\"]+)", re.I), MASK),
    # password=…, "password": "…", passwd / pwd / secret / token as keys
    (re.compile(r"(?P<head>(?:password|passwd|pwd|secret|token)[\"']?\s*[=:]\s*[\"']?)(?P<secret>[^\s&\"',}]+)",
                re.I), MASK),
    # the calendar feed's URL is its credential: /ical/wdc_PREFIX_SECRET.ics (uvicorn's access log)
    (re.compile(r"(?P<head>/ical/wdc_[0-9a-f]+_)(?P<secret>[A-Za-z0-9_\-]+)"), MASK),
]


def known_secrets(settings) -> list[str]:
    """Every secret the settings hold, longest first (so a secret inside another is masked whole)."""
    found: set[str] = set()

    def from_url(url: str | None) -> None:
        if not url:
            return
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        if parts.password:
            found.add(parts.password)
        if parts.scheme.lower() == "workflows" or "/workflows/" in url.lower():
            found.add(url.split("?", 1)[0].rstrip("/").rpartition("/")[2])
        for pair in parts.query.split("&"):
            key, _, value = pair.partition("=")
            if key.lower() in SECRET_QUERY_KEYS and value:
                found.add(value)

    from_url(settings.database_url.get_secret_value())
    if settings.smtp.password is not None:
        found.add(settings.smtp.password.get_secret_value())
    for url in settings.delivery.ops_urls:
        from_url(url)
    from_url(settings.http.heartbeat_url)
    # A very short "secret" would mask ordinary words; such a password is not worth hiding here.
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


class SecretMasker:
    """Replace known secrets and secret-shaped substrings with ``********``."""

    def __init__(self, secrets: list[str] | None = None):
        self.secrets = sorted({s for s in (secrets or []) if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, mask in _PATTERNS:
            text = pattern.sub(lambda m: m.group("head") + mask, text)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, extra fields, exc."""

    def __init__(self, masker: SecretMasker):
        super().__init__()
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        line = json.dumps(data, ensure_ascii=False, default=str)
        return self.masker(line)


class TextFormatter(logging.Formatter):
    def __init__(self, masker: SecretMasker):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        return self.masker(super().format(record))


def configure_logging(settings, *, level: str | None = None, stream: IO[str] | None = None) -> logging.Handler:
    """Install one handler on the root logger for the configured format; replace an earlier one.

    ``level`` overrides ``settings.log_level`` (the CLI's ``--verbose``). Idempotent: calling it
    again (tests, a reloaded configuration) replaces the handler instead of adding a second.
    """
    masker = SecretMasker(known_secrets(settings))
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(masker) if settings.log_format == "json" else TextFormatter(masker))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    chosen = level or settings.log_level
    # Other libraries (alembic, apscheduler, uvicorn) speak at INFO about routine things; they are
    # heard from WARNING on, or at everything when DEBUG is asked for.
    root.setLevel(chosen if chosen == "DEBUG" else max(logging.WARNING, logging.getLevelName(chosen)))
    logging.getLogger("watchdog").setLevel(chosen)
    logging.captureWarnings(True)
    return handler
