"""Benchmark phase: a delivery round to a local SMTP server, against smtplib on one connection.

I/O: starts an SMTP sink (aiosmtpd's ``Sink`` handler, which accepts and discards every message) in
its own process on a free loopback port, so the server's work does not share this process's GIL
with the code under test; sends only to it. The product side is ``delivery_round.deliver`` over the
benchmark store's outbox (claim, render, send through Apprise, record each outcome), stopped after
``MESSAGES`` messages; the floor is plain ``smtplib`` sending the same number of messages of the
same size over one connection, best of two, to the same server in the same run.
"""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage

MESSAGES = 2_001


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_sink():
    """An SMTP server in a child process that accepts and discards every message: its port."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                             "-l", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the SMTP sink did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.05)
        else:
            raise RuntimeError("the SMTP sink did not answer within 10 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _StopAfter:
    """Wraps the real transport: sets ``stop`` once ``limit`` messages went out, so the round ends
    after that many (``delivery_round.deliver`` checks ``stop`` between messages and releases the rest)."""

    def __init__(self, transport, limit: int, stop: threading.Event):
        self.transport, self.limit, self.stop = transport, limit, stop
        self.sent = 0
        self.sizes: list[int] = []

    def round(self):
        return self.transport.round()  # the real transport's round: its connections are kept

    def send(self, message, recipient):
        result = self.transport.send(message, recipient)
        self.sent += 1
        self.sizes.append(len(message.html.encode()) + len(message.text.encode()))
        if self.sent >= self.limit:
            self.stop.set()
        return result


def floor_messages_per_second(port: int, *, count: int, size: int) -> float:
    """smtplib, one connection, ``count`` multipart messages whose text and HTML parts add up to
    about ``size`` bytes (the product's average); best of two."""
    half = max(size // 2, 100)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for n in range(count):
                msg = EmailMessage()
                msg["Subject"] = f"Frist i morgen: sag S-2026-{n:06d}"
                msg["From"] = "Frister <frister@kommune.example.dk>"
                msg["To"] = f"w{n}@kommune.example"
                msg.set_content("x" * half)
                msg.add_alternative(f"<p>{'x' * (half - 7)}</p>", subtype="html")
                smtp.send_message(msg)
        best = min(best, time.perf_counter() - started)
    return count / best


def phase_delivery(url: str, *, now: datetime, settings_for, messages: int = MESSAGES) -> dict:
    """``delivery_round.deliver`` of ``messages`` messages from the store's outbox, and its floor."""
    from watchdog import delivery_round
    from watchdog.db import make_engine
    from watchdog.delivery import Transport

    engine = make_engine(url)
    try:
        with smtp_sink() as port:
            settings = settings_for(url, smtp={"host": "127.0.0.1", "port": port, "mode": "plain"},
                                    delivery={"batch_size": 200})
            stop = threading.Event()
            transport = _StopAfter(Transport(settings), messages, stop)
            # As a running service has after its first round: Apprise's plugins loaded (it imports
            # them on first use, about 1 s, several under load). Nothing is sent here.
            import apprise

            apprise.Apprise.instantiate(transport.transport.email_url("warm-up@bench.invalid"))
            started = time.perf_counter()
            report = delivery_round.deliver(engine, settings, now=now, transport=transport, worker_name="bench",
                                     stop=stop)
            seconds = time.perf_counter() - started
            if transport.sent == 0:
                raise RuntimeError("the outbox held nothing to deliver at the delivery phase's instant")
            size = sum(transport.sizes) // len(transport.sizes)
            floor = floor_messages_per_second(port, count=transport.sent, size=size)
    finally:
        engine.dispose()
    rate = transport.sent / seconds
    return {"seconds": seconds,
            "detail": {"messages": transport.sent, "alerts_sent": report.sent, "failed": report.failed,
                       "dead": report.dead, "released": report.released, "messages_per_s": round(rate, 1),
                       "floor_messages_per_s": round(floor, 1), "ratio": round(floor / rate, 2),
                       "average_bytes": size}}
