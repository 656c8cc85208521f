"""Where the settings come from: the files read, unknown ``WATCHDOG_*`` variables, each value's source.

I/O: reads the environment, ``.env`` and the TOML file (never writes). ``watchdog.settings`` builds the
settings; this module explains them. A ``WATCHDOG_`` variable that names no setting is otherwise
ignored without a word (pydantic-settings ignores unknown top-level names), so a typo such as
``WATCHDOG_DATABSE_URL`` would run the service on the default SQLite file: one that looks like a
misspelt setting is refused with a "did you mean", any other is warned about.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from watchdog.errors import ConfigError

PREFIX = "WATCHDOG_"
DOTENV = Path(".env")
# Variables the project's own tools read (not settings): never warned about.
TOOL_VARIABLES = frozenset({"WATCHDOG_CONFIG", "WATCHDOG_DEBUG", "WATCHDOG_VENV", "WATCHDOG_DISTRIBUTION"})
TOOL_PREFIXES = ("WATCHDOG_TEST_", "WATCHDOG_CI_", "WATCHDOG_FAULTS_", "WATCHDOG_BENCH_")


def _setting_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every settable path, sections included (a section may be given whole, as JSON)."""
    paths = []
    for name, info in model.model_fields.items():
        path = prefix + (name,)
        paths.append(path)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            paths.extend(_setting_paths(info.annotation, path))
    return paths


def env_name(path: tuple[str, ...]) -> str:
    return PREFIX + "__".join(p.upper() for p in path)


def known_variables() -> dict[str, tuple[str, ...]]:
    from watchdog.settings import Settings

    return {env_name(p): p for p in _setting_paths(Settings)}


@dataclass(frozen=True)
class UnknownVariable:
    name: str
    where: str  # "the environment" or the .env path
    suggestion: str | None

    def __str__(self) -> str:
        hint = f": did you mean {self.suggestion}?" if self.suggestion else " and is ignored"
        return f"{self.name} (in {self.where}) names no setting{hint}"


def dotenv_values_of(path: Path = DOTENV) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def unknown_variables(environ: Mapping[str, str] | None = None,
                      dotenv: Mapping[str, str] | None = None) -> list[UnknownVariable]:
    """The ``WATCHDOG_*`` variables (environment, then .env) that name no setting."""
    environ = os.environ if environ is None else environ
    dotenv = dotenv_values_of() if dotenv is None else dotenv
    known = known_variables()
    found = []
    for where, names in (("the environment", environ), (str(DOTENV), dotenv)):
        for raw in names:
            name = raw.upper()
            if not name.startswith(PREFIX) or name in known or name in TOOL_VARIABLES \
                    or name.startswith(TOOL_PREFIXES):
                continue
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
            found.append(UnknownVariable(raw, where, close[0] if close else None))
    return found


def refuse_misspelt_variables(environ: Mapping[str, str] | None = None,
                              dotenv: Mapping[str, str] | None = None) -> None:
    """ConfigError (exit 2) for a ``WATCHDOG_*`` variable that looks like a misspelt setting."""
    for unknown in unknown_variables(environ, dotenv):
        if unknown.suggestion:
            raise ConfigError(f"unknown variable {unknown}")


# ---- check-config: which files, and where each value came from ---------------------------------


@dataclass
class SourceReport:
    toml: str  # the TOML file read, or why none
    dotenv: str  # the .env file read, or why none
    sources: dict[str, str] = field(default_factory=dict)  # dotted key -> where its value came from


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _toml_keys(path: Path | None) -> set[str]:
    if path is None:
        return set()
    return set(_flatten(tomllib.loads(path.read_text(encoding="utf-8"))))


def describe_sources(settings, *, toml_path: Path | None, toml_origin: str,
                     overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> SourceReport:
    """Which files were read and, for every value that is not the default, where it came from."""
    from watchdog.settings import Settings

    environ = os.environ if environ is None else environ
    env_upper = {k.upper() for k in environ}
    dotenv = dotenv_values_of()
    dotenv_upper = {k.upper() for k in dotenv}
    toml_keys = _toml_keys(toml_path)
    report = SourceReport(
        toml=f"{toml_path} ({toml_origin})" if toml_path else f"none ({toml_origin})",
        dotenv=str(DOTENV.resolve()) if DOTENV.is_file() else f"none (no .env in {Path.cwd()})",
    )
    # Python mode: secrets stay SecretStr, which compare by their value (the JSON dump masks both).
    defaults = _flatten(Settings.model_construct().model_dump())
    for key, value in _flatten(settings.model_dump()).items():
        if defaults.get(key) == value:
            continue
        path = tuple(key.split("."))
        names = [env_name(path[:n]) for n in range(len(path), 0, -1)]  # the key, then its sections
        if path[0] in overrides and overrides[path[0]] is not None:
            source = f"command line (--{path[0].replace('_', '-')})"
        elif any(n in env_upper for n in names):
            source = "environment " + next(n for n in names if n in env_upper)
        elif any(n in dotenv_upper for n in names):
            source = ".env " + next(n for n in names if n in dotenv_upper)
        elif key in toml_keys or any(k.startswith(key + ".") for k in toml_keys):
            source = str(toml_path)
        else:
            source = "derived from another setting (e.g. a *_file)"
        report.sources[key] = source
    return report
