"""Typed errors of the core. The CLI turns each into one clear line and an exit code."""

from __future__ import annotations

from watchdog.sensitive import redact


class WatchdogError(Exception):
    """Base of every error a user can cause or fix. Its message is one readable line.

    Exit codes (README, CLI reference): 1 the command ran and found a problem (a failed send, an
    alert that is not dead), 2 a usage or configuration error (also: no schema yet), 3 the
    database cannot be reached."""

    exit_code = 2

    def __init__(self, *args, exit_code: int | None = None):
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(WatchdogError):
    """The configuration is invalid (bad URL, unknown key, refused setting)."""


class DatabaseError(WatchdogError):
    """The database cannot be reached or is not at the expected schema version."""

    exit_code = 3


class ValidationFailed(WatchdogError):
    """Input records were refused. ``problems`` names each record and field; nothing was stored."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        first = problems[0] if problems else None
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}" if first else "validation failed")


class Problem:
    """One refused field of one record: where it is and why."""

    __slots__ = ("source", "record", "field", "reason")

    def __init__(self, source: str, record: str, field: str, reason: str):
        # A refused value is often repeated in the reason: never a CPR number (watchdog.sensitive).
        self.source = redact(source)  # file name or request
        self.record = record  # row number or record id
        self.field = redact(field)
        self.reason = redact(reason)

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "record": self.record, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.source}, record {self.record}, field {self.field!r}: {self.reason}"

    def __repr__(self) -> str:
        return f"Problem({self!s})"
