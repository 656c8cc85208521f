"""Core commands: check-config and db upgrade/status."""

from __future__ import annotations

import json
import os

import typer

from watchdog.cli import app, state
from watchdog.cli.output import console as make_console

db_app = typer.Typer(help="Create, upgrade and inspect the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command("check-config")
def check_config(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the configuration as JSON."),
) -> None:
    """Print the resolved configuration with secrets masked; exit non-zero if it is invalid."""
    from watchdog.settings import resolve_config_path
    from watchdog.settings_sources import describe_sources

    st = state(ctx)
    settings = st.settings  # raises ConfigError -> one line, exit 2
    data = settings.masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    path = resolve_config_path(st.config)
    origin = ("--config" if st.config else "WATCHDOG_CONFIG" if os.environ.get("WATCHDOG_CONFIG")
              else "the default place" if path else "config/watchdog.toml does not exist")
    report = describe_sources(settings, toml_path=path, toml_origin=origin,
                              overrides={"database_url": st.database_url})
    console = make_console()
    console.print("[bold]configuration is valid[/bold]")
    console.print(f"TOML file read: {report.toml}", highlight=False, markup=False)
    console.print(f".env file read: {report.dotenv}", highlight=False, markup=False)
    console.print("values not marked are the defaults", highlight=False, markup=False)
    _print_tree(console, data, "", report.sources)


def _print_tree(console, data: dict, prefix: str, sources: dict[str, str]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _print_tree(console, value, name + ".", sources)
        else:
            source = f"   # from {sources[name]}" if name in sources else ""
            console.print(f"{name} = {json.dumps(value, ensure_ascii=False)}{source}", highlight=False,
                          markup=False)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create the database or upgrade it to the newest schema."""
    from watchdog.db import current_revision, safe_url, sqlite_path, upgrade, wait_for_database

    st = state(ctx)
    path = sqlite_path(st.settings.database_url_value) if st.settings.database_url_value.startswith(
        "sqlite") else None
    new_file = path is not None and not path.exists()
    engine = st.creating_engine()
    if new_file:
        typer.echo(f"created the database file {path}")
    wait_for_database(engine, attempts=3)
    before = current_revision(engine)
    upgrade(engine, revision)
    after = current_revision(engine)
    if before == after:
        typer.echo(f"database {safe_url(engine)} is at {after} (nothing to do)")
    else:
        typer.echo(f"database {safe_url(engine)} upgraded from {before or 'empty'} to {after}")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Show the database's schema revision and whether it is current."""
    from watchdog.db import current_revision, head_revision, safe_url, wait_for_database

    st = state(ctx)
    wait_for_database(st.engine, attempts=1)
    cur, head = current_revision(st.engine), head_revision()
    verdict = "current" if cur == head else "needs `watchdog db upgrade`"
    typer.echo(f"database {safe_url(st.engine)}: revision {cur or 'none'} (head {head}): {verdict}")
