"""Alert commands: `watchdog run` (the daemon), `watchdog tick` (one round), `watchdog outbox …`."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from watchdog.cli import app, state
from watchdog.cli.output import console as make_console
from watchdog.errors import WatchdogError

outbox_app = typer.Typer(help="Inspect the outbox and send dead letters again.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


class UnknownAlert(WatchdogError):
    """An alert id given on the command line does not exist."""


def _ready(st):
    from watchdog.db import require_schema, wait_for_database

    st.settings  # noqa: B018  (loading the settings also configures logging)
    wait_for_database(st.engine)
    require_schema(st.engine)  # no schema: "run `watchdog db upgrade`", exit 2, not a failing round each time


@app.command("run")
def run(
    ctx: typer.Context,
    replica_name: Optional[str] = typer.Option(
        None, "--replica", help="This replica's name in `watchdog health` and the metrics (default: HOST-PID)."),
) -> None:
    """Run the daemon: poll deadlines and plan alerts, deliver them, send the weekly digest.

    Stops on SIGTERM/SIGINT after the send in progress, exit code 0. Serves /healthz, /readyz and
    /metrics on http.health_port (0 = off).
    """
    from watchdog.delivery import Transport
    from watchdog.ops.health import start_health_server
    from watchdog.clock import utcnow
    from watchdog.ops.heartbeat import default_replica_name, mark_stopped
    from watchdog.scheduler import Daemon

    st = state(ctx)
    _ready(st)
    replica = replica_name or default_replica_name()
    daemon = Daemon(st.engine, st.settings, transport=Transport(st.settings), replica=replica)
    health = start_health_server(st.settings, st.engine, replica=replica)
    try:
        code = daemon.run()
    finally:
        health.stop()
    mark_stopped(st.engine, replica=replica, now=utcnow())  # `watchdog health` shows it as stopped
    raise typer.Exit(code)


@app.command("tick")
def tick(
    ctx: typer.Context,
    replica_name: Optional[str] = typer.Option(
        None, "--replica", help="The name every tick reports under (default: the host name; a Kubernetes "
                                "CronJob, whose pods are each named anew, should set one)."),
) -> None:
    """Read every configured source once, then one poll and one delivery round, then exit.

    For cron or a Kubernetes CronJob. Every tick reports under one stable replica name, so
    `watchdog health` and the metrics show one row for the cron job, not one per run. Exits 1 if a
    source or a part of the poll (intake check, digest) failed, after doing the rest.
    """
    from watchdog.clock import utcnow
    from watchdog.delivery import Transport
    from watchdog.intake.sources.runner import read_all_sources
    from watchdog.ops.heartbeat import tick_replica_name
    from watchdog.service import tick as tick_once

    st = state(ctx)
    _ready(st)
    replica = replica_name or tick_replica_name()
    rounds = read_all_sources(st.engine, st.settings, now=utcnow(), replica=replica)
    for one in rounds:
        typer.echo(f"source {one.source}: {one.summary}")
    polled, delivered = tick_once(st.engine, st.settings, now=utcnow(), transport=Transport(st.settings),
                                  clock=utcnow, replica=replica)
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
    raise typer.Exit(0 if polled.ok and all(r.ok for r in rounds) else 1)


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
    from watchdog.settings_urls import mask_url

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
    console = make_console()
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "the outbox is empty",
                  highlight=False, markup=False)


@outbox_app.command("show")
def outbox_show(ctx: typer.Context, alert_id: int = typer.Argument(..., help="The alert's id.")) -> None:
    """Show one alert and every delivery attempt made for it."""
    from sqlmodel import Session

    from watchdog import outbox
    from watchdog.clock import format_local
    from watchdog.settings_urls import mask_url

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
        not_dead = [] if all_dead else _not_dead(session, alert_ids)
        n = outbox.retry(session, now=utcnow(), alert_ids=None if all_dead else alert_ids)
    typer.echo(f"{n} dead alert(s) queued again")
    for line in not_dead:
        typer.echo(f"error: {line}", err=True)
    if not_dead:
        raise typer.Exit(1)


def _not_dead(session, alert_ids: list[int]) -> list[str]:
    """Why each named alert that is not dead cannot be retried (retry only sends dead letters)."""
    from sqlmodel import select

    from watchdog import outbox

    states = dict(session.exec(select(outbox.Alert.id, outbox.Alert.state)
                               .where(outbox.Alert.id.in_(alert_ids))).all())
    out = []
    for alert_id in dict.fromkeys(alert_ids):
        found = states.get(alert_id)
        if found is None:
            out.append(f"no alert with id {alert_id}")
        elif found != outbox.AlertState.DEAD:
            out.append(f"alert {alert_id} is {found.value}, not dead: nothing to retry "
                       "(`watchdog outbox show` tells its attempts)")
    return out
