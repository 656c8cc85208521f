"""Alert commands: `watchdog run` (the daemon), `watchdog tick` (one round), `watchdog outbox …`."""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from watchdog.cli import app, state
from watchdog.errors import WatchdogError

outbox_app = typer.Typer(help="Inspect the outbox and send dead letters again.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


class UnknownAlert(WatchdogError):
    """An alert id given on the command line does not exist."""


def _ready(st):
    from watchdog.db import wait_for_database

    st.settings  # noqa: B018  (loading the settings also configures logging)
    wait_for_database(st.engine)


@app.command("run")
def run(ctx: typer.Context) -> None:
    """Run the daemon: poll deadlines and plan alerts, deliver them, send the weekly digest.

    Stops on SIGTERM/SIGINT after the send in progress, exit code 0. Serves /healthz, /readyz and
    /metrics on http.health_port (0 = off).
    """
    from watchdog.delivery import Transport
    from watchdog.ops.health import start_health_server
    from watchdog.ops.heartbeat import default_replica_name
    from watchdog.scheduler import Daemon

    st = state(ctx)
    _ready(st)
    replica = default_replica_name()
    daemon = Daemon(st.engine, st.settings, transport=Transport(st.settings), replica=replica)
    health = start_health_server(st.settings, st.engine, replica=replica)
    try:
        code = daemon.run()
    finally:
        health.stop()
    raise typer.Exit(code)


@app.command("tick")
def tick(ctx: typer.Context) -> None:
    """One poll and one delivery round, then exit (for cron or a Kubernetes CronJob).

    Exits 1 if a part of the poll (intake check, digest) failed, after doing the rest.
    """
    from watchdog.clock import utcnow
    from watchdog.delivery import Transport
    from watchdog.service import tick as tick_once

    st = state(ctx)
    _ready(st)
    polled, delivered = tick_once(st.engine, st.settings, now=utcnow(), transport=Transport(st.settings),
                                  clock=utcnow)
    typer.echo(
        f"poll: {polled.cases_recomputed} cases recomputed, {polled.status_changes} status changes, "
        f"{polled.enqueued} new alerts, {polled.digests} digests, {polled.intake_silence_alerts} intake alerts"
        + (f"; {polled.cases_failed} cases could not be computed (see watchdog health)" if polled.cases_failed else "")
    )
    typer.echo(
        f"delivery: {delivered.messages} messages for {delivered.claimed} alerts: {delivered.sent} sent, "
        f"{delivered.accepted} accepted, {delivered.failed} to retry, {delivered.dead} dead"
    )
    for error in polled.errors:
        typer.echo(f"error: {error}", err=True)
    raise typer.Exit(0 if polled.ok else 1)


@outbox_app.command("list")
def outbox_list(
    ctx: typer.Context,
    state_: Optional[str] = typer.Option(None, "--state", help="Only this state: pending, claimed, sent, accepted, dead."),
    limit: int = typer.Option(50, "--limit", min=1, help="How many (newest first)."),
) -> None:
    """List the newest alerts in the outbox with their state, attempts and last error."""
    from sqlmodel import Session

    from watchdog import outbox
    from watchdog.clock import format_local
    from watchdog.settings import mask_url

    st = state(ctx)
    wanted = None
    if state_ is not None:
        try:
            wanted = outbox.AlertState(state_)
        except ValueError:
            raise WatchdogError(f"--state {state_!r} is not one of: "
                                + ", ".join(s.value for s in outbox.AlertState)) from None
    with Session(st.engine) as session:
        rows = outbox.list_alerts(session, state=wanted, limit=limit)
        counts = outbox.count_by_state(session)
    table = Table("id", "kind", "stage", "state", "channel", "recipient", "send after", "attempts", "last error")
    for a in rows:
        table.add_row(str(a.id), str(a.kind), a.stage, str(a.state), str(a.channel), mask_url(a.recipient_address),
                      format_local(a.send_after), str(a.attempts), (a.last_error or "")[:160])
    # Piped output (scripts, tests) gets a wide table instead of rich's 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 220)
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "the outbox is empty",
                  highlight=False, markup=False)


@outbox_app.command("show")
def outbox_show(ctx: typer.Context, alert_id: int = typer.Argument(..., help="The alert's id.")) -> None:
    """Show one alert and every delivery attempt made for it."""
    from sqlmodel import Session

    from watchdog import outbox
    from watchdog.clock import format_local
    from watchdog.settings import mask_url

    st = state(ctx)
    with Session(st.engine) as session:
        alert = session.get(outbox.Alert, alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert with id {alert_id}")
        attempts = outbox.attempts_of(session, alert_id)
    typer.echo(f"alert {alert.id}: {alert.kind} {alert.stage} → {mask_url(alert.recipient_address)} "
               f"({alert.channel}), state {alert.state}, {alert.attempts} attempts, "
               f"send after {format_local(alert.send_after)}, next attempt {format_local(alert.next_attempt_at)}")
    for att in attempts:
        verdict = "ok" if att.ok else ("permanent failure" if att.permanent else "failed")
        typer.echo(f"  {format_local(att.at)} {att.worker}: {verdict}: {att.detail or ''}")


@outbox_app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    alert_ids: Optional[list[int]] = typer.Argument(None, help="Dead alerts to send again (default: none)."),
    all_dead: bool = typer.Option(False, "--all-dead", help="Send every dead alert again."),
) -> None:
    """Put dead alerts back in the queue, due now, with a fresh attempt budget."""
    from watchdog import outbox
    from watchdog.clock import utcnow
    from watchdog.db import session_scope

    if not alert_ids and not all_dead:
        raise WatchdogError("name the dead alerts to retry (ids) or pass --all-dead")
    st = state(ctx)
    with session_scope(st.engine) as session:
        n = outbox.retry(session, now=utcnow(), alert_ids=None if all_dead else alert_ids)
    typer.echo(f"{n} dead alert(s) queued again")
