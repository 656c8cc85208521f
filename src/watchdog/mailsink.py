"""A local SMTP server that saves every message it receives as an .eml file.

I/O: a socket on 127.0.0.1 and files. The demo delivers its alerts here through the real delivery
path (Apprise → SMTP); `watchdog mailsink` runs it on its own for trying a configuration by hand.
It is a real SMTP server (aiosmtpd), not a fake: what arrives here is what a relay would get.
aiosmtpd is a runtime dependency for this module alone (the demo and `watchdog mailsink`), so
that `./dev demo` and a packaged install can try delivery without installing anything else.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def describe(path: Path, envelope) -> str:
    """One line about a received message: when, from, to, subject and the file it was saved to."""
    from email.header import decode_header, make_header
    from email.parser import BytesHeaderParser

    subject = BytesHeaderParser().parsebytes(envelope.content).get("Subject", "")
    try:
        subject = str(make_header(decode_header(subject)))
    except (ValueError, LookupError):
        pass
    to = ", ".join(envelope.rcpt_tos) or "?"
    from watchdog.clock import to_local, utcnow

    return (f"{to_local(utcnow()):%H:%M:%S} received from {envelope.mail_from or '?'} to {to}: "
            f"{' '.join(subject.split())!r} -> {path}")


@dataclass
class _Saver:
    folder: Path
    saved: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_message: Callable[[Path, object], None] | None = None

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        with self.lock:
            n = len(self.saved) + 1
            rcpt = re.sub(r"[^A-Za-z0-9@._-]", "_", envelope.rcpt_tos[0] if envelope.rcpt_tos else "unknown")
            path = self.folder / f"{n:05d}-{rcpt}.eml"
            path.write_bytes(envelope.content)
            self.saved.append(path)
        if self.on_message is not None:
            self.on_message(path, envelope)
        return "250 Message accepted for delivery"


class MailSink:
    """``with MailSink(folder) as sink:`` — an SMTP server on ``sink.host:sink.port``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int | None = None,
                 on_message: Callable[[Path, object], None] | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self._saver = _Saver(self.folder, on_message=on_message)
        self._controller = Controller(self._saver, hostname=host, port=self.port)

    @property
    def saved(self) -> list[Path]:
        with self._saver.lock:
            return list(self._saver.saved)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
