"""The command line: a thin layer over the library.

Typed errors from the core (``WatchdogError``) become one clear line on stderr and a non-zero
exit code here, and only here. Each command group lives in its own module in this package and
registers itself on ``app`` when imported (see ``_COMMAND_MODULES``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from watchdog import __version__
from watchdog.errors import WatchdogError

app = typer.Typer(
    name="watchdog",
    help="Watches the legal deadlines in Danish child-protection cases and warns in time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Command modules, imported in this order; each adds its commands to ``app``.
_COMMAND_MODULES = [
    "watchdog.cli.core",
    "watchdog.cli.demo",
    "watchdog.cli.ops",
    "watchdog.cli.intake",
    "watchdog.cli.sources",
    "watchdog.cli.delivery",
    "watchdog.cli.alerts",
    "watchdog.cli.deadlines",
    "watchdog.cli.reports",
]


class State:
    """Global options, resolved lazily so that `--help` never needs a valid configuration."""

    def __init__(self, config: Path | None, database_url: str | None):
        self.config = config
        self.database_url = database_url
        self._settings = None
        self._engine = None

    @property
    def settings(self):
        if self._settings is None:
            from watchdog.settings import load_settings

            self._settings = load_settings(self.config, database_url=self.database_url)
            from watchdog.settings_sources import unknown_variables

            for unknown in unknown_variables():  # the misspelt ones were refused above
                typer.echo(f"warning: {unknown}", err=True)
            from watchdog.ops.logs import configure_logging  # text or JSON lines, secrets masked

            configure_logging(self._settings, level="DEBUG" if getattr(self, "verbose", False) else None)
        return self._settings

    @property
    def engine(self):
        """The store, which must exist: only `db upgrade` creates a database (``creating_engine``)."""
        return self._make_engine(create=False)

    def creating_engine(self):
        """The store, created if it does not exist yet (`watchdog db upgrade`)."""
        return self._make_engine(create=True)

    def _make_engine(self, *, create: bool):
        if self._engine is None:
            from watchdog.db import make_engine

            url = self.settings.database_url_value
            _used_urls.append(url)
            self._engine = make_engine(url, create=create)
        return self._engine


# The database URL the command used, for turning a database exception into one line in main().
_used_urls: list[str] = []


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def _version(value: bool) -> None:
    if value:
        typer.echo(f"watchdog (frist-watchdog) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="TOML configuration file (default: config/watchdog.toml, or WATCHDOG_CONFIG)."),
    ] = None,
    database_url: Annotated[
        Optional[str],
        typer.Option("--database-url", help="Database URL; overrides WATCHDOG_DATABASE_URL and the file."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """watchdog: legal deadlines in child-protection cases, watched."""
    ctx.obj = State(config, database_url)
    ctx.obj.verbose = verbose
    if verbose:
        logging.getLogger("watchdog").setLevel(logging.DEBUG)


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _load_commands()
    try:
        app(args=argv, prog_name="watchdog")
    except WatchdogError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not a user's mistake: still one line unless asked for more
        known = _database_error(exc)
        if known is not None:
            typer.echo(f"error: {known}", err=True)
            sys.exit(known.exit_code)
        _unexpected(exc)


def _database_error(exc: Exception) -> WatchdogError | None:
    """A database exception a person can act on (no schema: exit 2, unreachable: exit 3), or None."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError) or os.environ.get("WATCHDOG_DEBUG"):
        return None
    from watchdog.db import translate_error

    return translate_error(exc, _used_urls[-1] if _used_urls else "sqlite://")


def _unexpected(exc: Exception) -> None:
    if os.environ.get("WATCHDOG_DEBUG"):
        raise exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    typer.echo(
        f"error: unexpected {type(exc).__name__}: {first} (set WATCHDOG_DEBUG=1 for the traceback)",
        err=True,
    )
    sys.exit(70)


_load_commands()
