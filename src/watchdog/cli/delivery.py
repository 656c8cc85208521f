"""Delivery commands: `watchdog send-test`, to try the configured channels by hand.

I/O: the network (SMTP, Teams) through ``delivery.Transport``, and the database to look a worker up.
"""

from __future__ import annotations

import typer

from watchdog.cli import app, state
from watchdog.errors import WatchdogError


class UnknownRecipient(WatchdogError):
    """``--to`` is neither a worker's ext_id, an email address nor a Teams workflow URL."""


@app.command("send-test")
def send_test(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="A worker's ext_id (their email, and Teams if set), "
                           "an email address, or a workflows:// / https://…/workflows/… URL."),
) -> None:
    """Send a test message through the configured channels and report the result per channel.

    Exits 1 if any channel failed. The test message carries no case data.
    """
    from watchdog.clock import utcnow
    from watchdog.delivery import Transport
    from watchdog.outbox import Channel
    from watchdog.render import render_test_message
    from watchdog.settings_urls import mask_url

    st = state(ctx)
    settings = st.settings
    recipients = _resolve(st, to.strip())
    transport = Transport(settings)
    now = utcnow()
    failed = 0
    for recipient in recipients:
        shown = recipient.address if recipient.channel == Channel.EMAIL else mask_url(recipient.address)
        message = render_test_message(now=now, municipality=settings.municipality,
                                      channel_note=f"{recipient.channel.value}")
        result = transport.send(message, recipient)
        if result.ok:
            verdict = "accepted (not proof that it was read)" if result.accepted_only else "sent"
            typer.echo(f"{recipient.channel.value} {shown}: {verdict}: {result.detail}")
        else:
            failed += 1
            kind = "permanent" if result.permanent else "transient"
            typer.echo(f"{recipient.channel.value} {shown}: FAILED ({kind}): {result.detail}", err=True)
            if recipient.channel == Channel.EMAIL:
                hint = smtp_hint(settings.smtp.host, settings.smtp.port)
                if hint:
                    typer.echo(hint, err=True)
    if failed:
        raise typer.Exit(1)


def smtp_hint(host: str, port: int) -> str | None:
    """When nothing listens where [smtp] points, say so and how to try delivery locally."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except ConnectionRefusedError:
        pass
    except OSError as exc:
        return f"hint: cannot connect to the SMTP server {host}:{port} (smtp.host, smtp.port): {exc}"
    return (f"hint: nothing listens on {host}:{port} (smtp.host, smtp.port). To try delivery locally, "
            "start a sink in another shell with `watchdog mailsink` (port 8025) and run "
            "WATCHDOG_SMTP__PORT=8025 watchdog send-test …; for a real relay set [smtp] host and port "
            "(see check-config)")


def _resolve(st, to: str):
    """The recipients ``--to`` names: a URL, an address, or a worker's channels."""
    from watchdog.delivery import Recipient
    from watchdog.outbox import Channel

    if not to:
        raise UnknownRecipient("--to is empty: give a worker ext_id, an email address or a Teams workflow URL")
    if "://" in to:
        scheme = to.split("://", 1)[0].lower()
        if scheme in ("mailto", "mailtos"):
            raise UnknownRecipient("give a plain email address with --to; the SMTP server comes from settings.smtp")
        return [Recipient(to, Channel.TEAMS)]
    if "@" in to:
        return [Recipient(to, Channel.EMAIL)]
    from sqlmodel import Session, select

    from watchdog.casestore import Worker
    from watchdog.db import wait_for_database

    wait_for_database(st.engine, attempts=1)
    with Session(st.engine) as session:  # no schema yet: the CLI says "run `watchdog db upgrade`"
        worker = session.exec(select(Worker).where(Worker.ext_id == to)).first()
    if worker is None:
        raise UnknownRecipient(f"no worker with ext_id {to!r} (and it is not an email address or a URL)")
    recipients = [Recipient(worker.email, Channel.EMAIL, worker.name)]
    if worker.teams_workflow_url:
        recipients.append(Recipient(worker.teams_workflow_url, Channel.TEAMS, worker.name))
    return recipients
