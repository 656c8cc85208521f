"""Intake commands: `watchdog import`, `watchdog serve`, `watchdog token create|list|revoke`."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from watchdog.cli import app, state
from watchdog.cli.output import console as make_console
from watchdog.errors import ValidationFailed

token_app = typer.Typer(help="Create, list and revoke API tokens for `watchdog serve`.", no_args_is_help=True)
app.add_typer(token_app, name="token")

@contextmanager
def _progress():
    """A progress bar on stderr for an import on a terminal (records counted as they stream, so
    without a total); a no-op callback otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("validating and writing", total=None)
        yield lambda n: bar.advance(task, n)


@app.command("import")
def import_files(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="CSV, XLSX or JSON Lines files, in any order.")],
    entity: Annotated[Optional[str], typer.Option(
        "--entity", "-e", help="The entity every file holds (default: from each file name, e.g. cases.csv).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; store nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    mapping: Annotated[Optional[Path], typer.Option(
        "--mapping", "-m", help="A mapping (TOML) from the case system's columns to ours "
        "(see examples/mappings/).")] = None,
) -> None:
    """Import case-system exports: every record validated first, all of them stored or none."""
    from watchdog.clock import utcnow
    from watchdog.db import wait_for_database
    from watchdog.intake.stream import FileStream
    from watchdog.intake.upsert import import_records

    st = state(ctx)
    notes: list[str] = []
    file_problems: list = []
    try:
        if mapping is not None:
            from watchdog.intake.sources.mapping import load_mapping
            from watchdog.intake.sources.reading import read_mapped_files

            records, file_problems = read_mapped_files(files, load_mapping(mapping), entity=entity)
        else:
            records = FileStream(files, entity=entity)  # read as it is imported, in dependency order
            notes = records.notes
        wait_for_database(st.engine, attempts=3)
        with _progress() as progress:
            result = import_records(st.engine, records, now=utcnow(), settings=st.settings,
                                    dry_run=dry_run, progress=progress, file_problems=file_problems)
        for note in notes:
            typer.echo(f"warning: {note}", err=True)
    except ValidationFailed as exc:
        for note in notes:
            typer.echo(f"warning: {note}", err=True)
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        n = len(exc.problems)
        typer.echo(f"error: {n} problem{'s' if n != 1 else ''} found; nothing was stored", err=True)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(title="dry run: nothing stored" if dry_run else "imported")
    for column in ("entity", "created", "updated", "unchanged"):
        table.add_column(column, justify="left" if column == "entity" else "right")
    for name, counts in result.counts.items():
        if counts.total:
            table.add_row(name, str(counts.created), str(counts.updated), str(counts.unchanged))
    console = make_console()
    console.print(table)
    for w in result.warnings:  # stored, refuse nothing: `watchdog report data-quality` lists them
        typer.echo(f"warning: {w.source}, record {w.record}, field {w.field}: {w.message}", err=True)
    if not dry_run:
        recomputed = result.deadlines_recomputed
        tail = (f"{recomputed} deadlines recomputed" if recomputed is not None
                else "deadlines follow at the next poll")
        console.print(f"{len(result.affected_case_ids)} cases changed; {tail}", highlight=False)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default: http.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: http.port).")] = None,
) -> None:
    """Serve the web app and the HTTP ingest API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from watchdog.db import require_schema, wait_for_database
    from watchdog.web.app import service_app

    st = state(ctx)
    wait_for_database(st.engine)
    require_schema(st.engine)
    api = service_app(st.settings, st.engine)  # ingest API, /healthz /readyz /metrics, the web app
    # log_config=None: uvicorn's records go through watchdog's handler (JSON lines, secrets masked).
    # timeout_keep_alive closes idle connections; a stalled body gets 408 from the app itself
    # (http.body_timeout_seconds). Slow headers and TLS are a reverse proxy's job (README).
    uvicorn.run(api, host=host or st.settings.http.host, port=st.settings.http.port if port is None else port,
                log_level=st.settings.log_level.lower(), proxy_headers=True, server_header=False,
                log_config=None, timeout_keep_alive=st.settings.http.keep_alive_seconds)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who uses the token, e.g. 'case system nightly push'.")],
    scope: Annotated[list[str], typer.Option(
        "--scope", "-s", help="read (GET deadlines) and/or write (POST records); repeat for both.")] = ["read"],
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from watchdog.clock import utcnow
    from watchdog.db import session_scope
    from watchdog.intake.tokens import create_token

    with session_scope(state(ctx).engine) as session:
        new = create_token(session, name=name, scopes=set(scope), now=utcnow())
    typer.echo(new.token)
    typer.echo(f"token {new.record.prefix} ({new.record.scopes}) for {new.record.name!r}: "
               "store it now, it cannot be shown again", err=True)


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List API tokens (prefix, name, scopes, created, revoked); never the tokens themselves."""
    from watchdog.clock import format_local
    from watchdog.db import session_scope
    from watchdog.intake.tokens import list_tokens

    with session_scope(state(ctx).engine) as session:
        tokens = list_tokens(session)
    table = Table()
    for column in ("prefix", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for t in tokens:
        table.add_row(t.prefix, t.name, t.scopes, format_local(t.created_at),
                      format_local(t.revoked_at) if t.revoked_at else "")
    make_console().print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The token's prefix as `watchdog token list` shows it.")],
) -> None:
    """Revoke an API token: requests with it get 401 from now on."""
    from watchdog.clock import format_local, utcnow
    from watchdog.db import session_scope
    from watchdog.intake.tokens import revoke_token

    with session_scope(state(ctx).engine) as session:
        record = revoke_token(session, prefix, now=utcnow())
    typer.echo(f"token {record.prefix} ({record.name}) revoked at {format_local(record.revoked_at)}")
