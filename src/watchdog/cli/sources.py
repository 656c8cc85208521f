"""Source commands: `watchdog sources` (each source's state), `watchdog mapping check`.

I/O: the database (``sources``); the mapping and sample files (``mapping check``, no database).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from watchdog.cli import app, state

mapping_app = typer.Typer(help="Check a mapping from a case system's columns to watchdog's.", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")


@app.command("sources")
def sources(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sources as JSON.")] = False,
) -> None:
    """List the configured sources (drop folder, SQL sources) with their state.

    Last successful read, rows read, batches imported and refused, the last error, and whether the
    source has been silent longer than intake.source_max_age_hours.
    """
    from sqlmodel import Session

    from watchdog.clock import utcnow
    from watchdog.db import wait_for_database
    from watchdog.intake.sources.watch import source_overview

    st = state(ctx)
    wait_for_database(st.engine, attempts=1)
    with Session(st.engine) as session:
        infos = source_overview(session, st.settings, now=utcnow())
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2, ensure_ascii=False))
        return
    if not infos:
        typer.echo("no sources configured (set intake.drop_folder or [[intake.sql_sources]])")
        return
    table = Table()
    for column in ("source", "kind", "where", "last successful read", "rows read", "imported", "refused",
                   "state"):
        table.add_column(column)
    for i in infos:
        status = "SILENT" if i.silent else ("error: " + i.last_error if i.last_error else "ok")
        table.add_row(i.name, i.kind, i.where, i.last_ok_at or "never", str(i.rows_read), str(i.batches_ok),
                      str(i.batches_refused), status)
    Console(width=200).print(table)


@mapping_app.command("check")
def mapping_check(
    mapping_file: Annotated[Path, typer.Argument(help="The mapping (TOML).")],
    sample: Annotated[Path, typer.Argument(help="A sample export file (CSV, XLSX or JSON Lines).")],
    entity: Annotated[Optional[str], typer.Option(
        "--entity", "-e", help="The entity the sample holds (default: from the mapping's files patterns).")] = None,
    rows: Annotated[int, typer.Option("--rows", "-n", help="How many mapped rows to show.")] = 5,
) -> None:
    """Show how the first rows of a sample map, and what would be refused. Exit 1 if anything is.

    Needs no database: references to other records are not checked here (the import does that).
    """
    from watchdog.errors import Problem, ValidationFailed
    from watchdog.intake.sources.mapping import load_mapping
    from watchdog.intake.sources.reading import _table_of, entity_of_file, read_mapped_file
    from watchdog.intake.upsert import validate_raw

    mapping = load_mapping(mapping_file)
    target = entity_of_file(sample, mapping, entity)
    if target is None:
        typer.echo(f"error: the mapping {mapping.name!r} names no entity for {sample.name} (add it to files = "
                   "[...] or pass --entity)", err=True)
        raise typer.Exit(1)
    typer.echo(f"mapping {mapping.name!r}: {sample.name} → {target.name}")
    if sample.suffix.lower() in (".csv", ".txt", ".xlsx"):
        try:
            header, _ = _table_of(sample)
        except ValidationFailed:
            header = []
        for column in header:
            typer.echo(f"  {str(column).strip().lstrip(chr(0xfeff))}: {target.role_of(str(column))}")
        for name, value in target.constants.items():
            typer.echo(f"  (constant) → {name} = {value!r}")
    problems: list[Problem] = []
    try:
        records = read_mapped_file(sample, mapping, entity=target.name)
    except ValidationFailed as exc:
        records, problems = [], list(exc.problems)
    valid, invalid = validate_raw(records)
    problems.extend(invalid)
    for rec in valid[:rows]:
        shown = ", ".join(f"{k}={_shown(v)}" for k, v in rec.data.model_dump().items() if v not in (None, [], ""))
        typer.echo(f"  row {rec.record}: {shown}")
    typer.echo(f"{len(valid)} of {len(records)} rows map cleanly")
    for problem in problems:
        typer.echo(f"refused: {problem}", err=True)
    if problems:
        typer.echo(f"error: {len(problems)} problem{'s' if len(problems) != 1 else ''}: an import of this "
                   "file would store nothing", err=True)
        raise typer.Exit(1)


def _shown(value) -> str:
    from datetime import date, datetime

    from watchdog.clock import format_local

    if isinstance(value, datetime):
        return format_local(value)
    if isinstance(value, date):
        return value.strftime("%d-%m-%Y")
    return str(getattr(value, "value", value))
