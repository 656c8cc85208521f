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
    every replica's last round. Exit 2 when the database has no schema, 3 when it cannot be reached.
    """
    from sqlmodel import Session

    from watchdog.clock import utcnow
    from watchdog.deadline_marks import list_failures
    from watchdog.ops.health import check_ready
    from watchdog.ops.heartbeat import replica_state, replicas

    st = state(ctx)
    now = utcnow()
    result = check_ready(st.engine, st.settings, now=now, replica=replica)
    rows, failures = [], []
    if result.database == "ok":
        with Session(st.engine) as session:
            rows = replicas(session)
            failures = list_failures(session, limit=20)
    silent_after = st.settings.http.ready_max_poll_age_seconds
    states = {r.replica: replica_state(r, now=now, silent_after_seconds=silent_after) for r in rows}
    if as_json:
        data = result.as_dict() | {"replicas": [
            {"replica": r.replica, "state": states[r.replica], "last_round_at": r.last_round_at.isoformat(),
             "last_poll_ok_at": r.last_poll_ok_at.isoformat() if r.last_poll_ok_at else None,
             "stopped_at": r.stopped_at.isoformat() if r.stopped_at else None,
             "rounds_ok": r.rounds_ok, "rounds_failed": r.rounds_failed, "last_error": r.last_error}
            for r in rows], "failing_cases_listed": [
            {"case": f.case_ref, "error": f.error, "first_failed_at": f.first_failed_at.isoformat(),
             "last_failed_at": f.last_failed_at.isoformat(), "attempts": f.attempts} for f in failures]}
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"{'ready' if result.ready else 'NOT READY'}: {result.reason}")
        for r in rows:
            last_ok = r.last_poll_ok_at.isoformat(timespec="seconds") if r.last_poll_ok_at else "never"
            shown = {"running": "running", "silent": f"silent (no round for over {silent_after}s)",
                     "stopped": f"stopped at {r.stopped_at.isoformat(timespec='seconds') if r.stopped_at else '?'}"}
            line = (f"  {r.replica}: {shown[states[r.replica]]}; last successful poll {last_ok}, "
                    f"{r.rounds_ok} ok, {r.rounds_failed} failed")
            if r.last_error:
                line += f" (last error: {r.last_error})"
            typer.echo(line)
        for src in result.sources:
            line = (f"  source {src['name']}: last successful read {src['last_ok_at'] or 'never'}, "
                    f"{src['rows_read']} rows read, {src['batches_ok']} batches imported, "
                    f"{src['batches_refused']} refused")
            if src["silent"]:
                line += " — SILENT too long"
            if src["last_error"]:
                line += f" (last error: {src['last_error']})"
            typer.echo(line)
        if result.failing_cases:
            typer.echo(f"  deadlines of {result.failing_cases} case(s) cannot be computed (tried again every poll):")
            for f in failures:
                typer.echo(f"    {f.case_ref}: {f.error} (since {f.first_failed_at.isoformat(timespec='seconds')}, "
                           f"{f.attempts} attempts)")
    if result.ready:
        raise typer.Exit(0)
    raise typer.Exit(1 if result.database == "ok" else 2 if result.database == "no schema" else 3)
