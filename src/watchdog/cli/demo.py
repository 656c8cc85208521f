"""`watchdog demo` and `watchdog mailsink`."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from watchdog.cli import app
from watchdog.cli.output import console as make_console
from watchdog.clock import format_local, utcnow
from watchdog.errors import WatchdogError

# A fixed default, so a newcomer's first run and the README show the same municipality.
DEFAULT_SEED = 2026


@app.command("demo")
def demo(
    seed: int = typer.Option(DEFAULT_SEED, help="Random seed; the same seed (and --now) gives the same municipality and alerts."),
    out: Path = typer.Option(Path("demo-out"), help="Folder for the demo database and the delivered messages (replaced)."),
    cases: int = typer.Option(900, min=1, max=200_000, help="Number of cases in the synthetic municipality."),
    caseworkers: int = typer.Option(32, min=2, max=2000, help="Number of caseworkers."),
    now: Optional[str] = typer.Option(None, help="Run as if it were this instant: dd-mm-yyyy HH:MM or ISO 8601 (Danish time unless an offset is given)."),
    serve: bool = typer.Option(False, "--serve", help="Then serve the web app on 127.0.0.1 with the demo sign-in (Ctrl-C stops)."),
    port: int = typer.Option(8080, min=1, max=65535, help="Port for --serve."),
) -> None:
    """Run the demo: a synthetic municipality, its deadlines, and its alerts delivered to a local SMTP server."""
    from watchdog.demo import run_demo
    from watchdog.demo_data import Scale

    console = Console(stderr=True)
    chosen_seed = seed
    when = _parse_now(now)
    started = time.monotonic()
    with console.status("starting…") as status:
        result = run_demo(out=out, seed=chosen_seed, now=when,
                          scale=Scale(cases=cases, caseworkers=caseworkers),
                          progress=lambda m: status.update(m + "…"))
    elapsed = time.monotonic() - started

    out_console = make_console()
    out_console.print(f"[bold]watchdog demo[/bold] — Demo Kommune, seed {chosen_seed}, as of {format_local(when)}")
    rows = result.rows
    out_console.print(
        f"{rows.get('active_cases', rows['cases'])} active cases, {rows['workers']} workers in {rows['teams']} teams, "
        f"{rows['notifications']} notifications, {rows['investigations']} investigations, {rows['measures']} measures"
    )
    table = Table(title="Deadlines by duty and status", show_lines=False)
    statuses = ["open", "met", "met_late", "breached", "excepted", "not_applicable"]
    table.add_column("duty")
    for s in statuses:
        table.add_column(s, justify="right")
    duties = sorted({d for d, _ in result.deadlines_by_duty_status})
    for d in duties:
        table.add_row(d, *[str(result.deadlines_by_duty_status.get((d, s), 0)) for s in statuses])
    out_console.print(table)
    alerts = ", ".join(f"{n} {state}" for state, n in sorted(result.alerts_by_state.items())) or "none"
    out_console.print(f"alerts: {alerts}")
    out_console.print(f"{len(result.messages)} messages delivered over SMTP, saved in {result.out / 'mail'}")
    if result.messages:
        out_console.print(f"  e.g. {result.messages[0]}")
    out_console.print(f"database: {result.database_url}   ({elapsed:.1f} s)")
    config = result.out / "watchdog.toml"
    out_console.print(f"explore it: watchdog --config {config} deadlines --status breached", soft_wrap=True)
    out_console.print(f"            watchdog --config {config} report barometer --from {when.year}-01-01 "
                      f"--to {when.year}-12-31", soft_wrap=True)
    if serve:
        # An explicit --now is the demo's clock on the pages too (the municipality was built for it).
        _serve(result.database_url, port, out_console, clock=(lambda: when) if now else utcnow)


def _serve(database_url: str, port: int, console: Console, *, clock) -> None:
    """Serve the demo's web app (and /healthz) on loopback until Ctrl-C."""
    import uvicorn

    from watchdog.db import make_engine
    from watchdog.demo import demo_sign_ins, demo_web_settings
    from watchdog.web.app import service_app

    settings = demo_web_settings(database_url)
    engine = make_engine(settings.database_url_value)
    url = f"http://127.0.0.1:{port}"
    console.print(f"\n[bold]web app:[/bold] {url}/logind  (health: {url}/healthz; Ctrl-C stops)")
    console.print("sign in with the demo sign-in as, for example:")
    for role, ext_id, name in demo_sign_ins(engine):
        console.print(f"  {role:<15} {ext_id}  {name}", highlight=False)
    try:
        uvicorn.run(service_app(settings, engine, clock=clock), host="127.0.0.1", port=port, log_level="warning",
                    server_header=False, log_config=None)
    finally:
        engine.dispose()


def _parse_now(text: str | None) -> datetime:
    if not text:
        return utcnow()
    from watchdog.timeinput import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise WatchdogError(f"--now: {exc}") from None


@app.command("mailsink")
def mailsink(
    folder: Path = typer.Option(Path("mailsink-out"), help="Folder for the received messages (.eml)."),
    port: int = typer.Option(8025, min=1, max=65535, help="Port on 127.0.0.1."),
) -> None:
    """Run a local SMTP server that saves every message as an .eml file (for trying a configuration)."""
    from watchdog.mailsink import MailSink, describe

    def received(path: Path, envelope) -> None:  # one line per message, as it arrives
        typer.echo(describe(path, envelope), err=False)

    sink = MailSink(folder, port=port, on_message=received).start()
    typer.echo(f"listening on smtp://127.0.0.1:{port}, saving to {folder} (Ctrl-C to stop)")
    typer.echo("point watchdog at it with the environment:\n"
               f"  WATCHDOG_SMTP__HOST=127.0.0.1 WATCHDOG_SMTP__PORT={port} WATCHDOG_SMTP__MODE=plain\n"
               "or in the TOML file:\n"
               f'  [smtp]\n  host = "127.0.0.1"\n  port = {port}\n  mode = "plain"\n'
               "then try it: watchdog send-test --to someone@kommune.dk")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
        typer.echo(f"{len(sink.saved)} messages saved")
