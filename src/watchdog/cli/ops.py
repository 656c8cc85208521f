"""Operations commands: `watchdog health`."""

from __future__ import annotations

import json

import typer

from watchdog.cli import app, state


@app.command("health")
def health(
    ctx: typer.Context,
    replica: str = typer.Option(None, "--replica", help="Check this replica's own polls only."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Is the service ready (database reachable, a recent successful poll)? Exit 0 if so, 1 if not.

    The same check as /readyz, for a shell, a cron job or a container health check; it also lists
    every replica's last round.
    """
    from sqlmodel import Session

    from watchdog.clock import utcnow
    from watchdog.deadline_marks import list_failures
    from watchdog.ops.health import check_ready
    from watchdog.ops.heartbeat import replicas

    st = state(ctx)
    now = utcnow()
    result = check_ready(st.engine, st.settings, now=now, replica=replica)
    rows, failures = [], []
    if result.database == "ok":
        with Session(st.engine) as session:
            rows = replicas(session)
            failures = list_failures(session, limit=20)
    if as_json:
        data = result.as_dict() | {"replicas": [
            {"replica": r.replica, "last_round_at": r.last_round_at.isoformat(),
             "last_poll_ok_at": r.last_poll_ok_at.isoformat() if r.last_poll_ok_at else None,
             "rounds_ok": r.rounds_ok, "rounds_failed": r.rounds_failed, "last_error": r.last_error}
            for r in rows], "failing_cases_listed": [
            {"case": f.case_ref, "error": f.error, "first_failed_at": f.first_failed_at.isoformat(),
             "last_failed_at": f.last_failed_at.isoformat(), "attempts": f.attempts} for f in failures]}
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"{'ready' if result.ready else 'NOT READY'}: {result.reason}")
        for r in rows:
            last_ok = r.last_poll_ok_at.isoformat(timespec="seconds") if r.last_poll_ok_at else "never"
            line = f"  {r.replica}: last successful poll {last_ok}, {r.rounds_ok} ok, {r.rounds_failed} failed"
            if r.last_error:
                line += f" (last error: {r.last_error})"
            typer.echo(line)
        if result.failing_cases:
            typer.echo(f"  deadlines of {result.failing_cases} case(s) cannot be computed (tried again every poll):")
            for f in failures:
                typer.echo(f"    {f.case_ref}: {f.error} (since {f.first_failed_at.isoformat(timespec='seconds')}, "
                           f"{f.attempts} attempts)")
    raise typer.Exit(0 if result.ready else 1)
