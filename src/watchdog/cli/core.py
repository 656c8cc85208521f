"""Core commands: check-config and db upgrade/status."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from watchdog.cli import app, state

db_app = typer.Typer(help="Create, upgrade and inspect the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command("check-config")
def check_config(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the configuration as JSON."),
) -> None:
    """Print the resolved configuration with secrets masked; exit non-zero if it is invalid."""
    settings = state(ctx).settings  # raises ConfigError -> one line, exit 2
    data = settings.masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    console = Console()
    console.print("[bold]configuration is valid[/bold]")
    _print_tree(console, data, "")


def _print_tree(console: Console, data: dict, prefix: str) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _print_tree(console, value, name + ".")
        else:
            console.print(f"{name} = {json.dumps(value, ensure_ascii=False)}", highlight=False, markup=False)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create the database or upgrade it to the newest schema."""
    from watchdog.db import current_revision, safe_url, upgrade, wait_for_database

    st = state(ctx)
    wait_for_database(st.engine, attempts=3)
    before = current_revision(st.engine)
    upgrade(st.engine, revision)
    after = current_revision(st.engine)
    if before == after:
        typer.echo(f"database {safe_url(st.engine)} is at {after} (nothing to do)")
    else:
        typer.echo(f"database {safe_url(st.engine)} upgraded from {before or 'empty'} to {after}")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Show the database's schema revision and whether it is current."""
    from watchdog.db import current_revision, head_revision, safe_url, wait_for_database

    st = state(ctx)
    wait_for_database(st.engine, attempts=1)
    cur, head = current_revision(st.engine), head_revision()
    verdict = "current" if cur == head else "needs `watchdog db upgrade`"
    typer.echo(f"database {safe_url(st.engine)}: revision {cur or 'none'} (head {head}): {verdict}")
