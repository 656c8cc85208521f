"""Real delivery servers for the test suite: an SMTP server and an HTTPS Teams-workflow receiver.

Both run in-process on 127.0.0.1 with free ports, and both are the real protocol, not fakes of
Apprise: an aiosmtpd server that parses every message it accepts, and an ``http.server`` behind
TLS (a self-signed certificate made once per session with the ``openssl`` CLI) that records every
POSTed JSON body. Registered from tests/conftest.py with ``pytest_plugins = ["fixtures_servers"]``.

    def test_x(smtp_server, teams_receiver):
        settings = settings_for(smtp_server)
        ...
        smtp_server.messages[0].message["Subject"]
        teams_receiver.posts[0].body["attachments"][0]["content"]
        teams_receiver.status = 500     # answer the next posts with 500
        smtp_server.reject_rcpt = "550 5.1.1 No such user"   # refuse every recipient
        smtp_server.reject_addresses["x@kommune.dk"] = "451 4.3.0 Later"  # refuse one
        smtp_server.stop(); smtp_server.start()              # down and back, same port
"""

from __future__ import annotations

import email
import json
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SMTP -------------------------------------------------------------------------------------

@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage  # parsed with the modern policy: .get_body(("plain",)), ["Subject"]

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


class SmtpServer:
    """An aiosmtpd server that keeps every message; can refuse recipients, stop and start again."""

    def __init__(self, port: int | None = None, *, starttls: ssl.SSLContext | None = None,
                 implicit_tls: ssl.SSLContext | None = None):
        self.host = "127.0.0.1"
        self.starttls = starttls  # offer STARTTLS and require it before MAIL FROM
        self.implicit_tls = implicit_tls  # TLS from the first byte (port 465 style)
        self.port = port or free_port()
        self.messages: list[ReceivedMail] = []
        # An SMTP reply such as "550 5.1.1 No such user" or "451 4.3.0 Try again later" to give
        # every RCPT TO; None accepts them.
        self.reject_rcpt: str | None = None
        self.reject_addresses: dict[str, str] = {}  # address → SMTP reply, for that address only
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # aiosmtpd handler hooks
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject_addresses:
            return self.reject_addresses[address]
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=policy.default)
        with self._lock:
            self.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self.starttls is not None:
            kwargs.update(tls_context=self.starttls, require_starttls=True)
        if self.implicit_tls is not None:
            kwargs.update(ssl_context=self.implicit_tls)
        self._controller = Controller(self, hostname=self.host, port=self.port, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def to(self, address: str) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self.messages if address in m.rcpt_tos]


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def _server_tls_context(tls_certificate) -> ssl.SSLContext:
    cert, key = tls_certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def smtp_server_starttls(tls_certificate):
    """An SMTP server that requires STARTTLS, with the session's self-signed certificate."""
    server = SmtpServer(starttls=_server_tls_context(tls_certificate))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server_ssl(tls_certificate):
    """An SMTP server that speaks TLS from the first byte (like port 465)."""
    server = SmtpServer(implicit_tls=_server_tls_context(tls_certificate))
    server.start()
    yield server
    server.stop()


# --- HTTPS Teams workflow receiver ------------------------------------------------------------

@dataclass
class Post:
    path: str
    query: dict[str, list[str]]
    body: Any  # the decoded JSON

    @property
    def card(self) -> dict:
        """The Adaptive Card in a Teams workflow payload."""
        return self.body["attachments"][0]["content"]


@dataclass
class TeamsReceiver:
    """An HTTPS server that answers like a Power Automate workflow trigger.

    Apprise's workflows plugin POSTs to ``/workflows/<WORKFLOW>/triggers/manual/paths/invoke``
    with ``api-version``, ``sp``, ``sv`` and ``sig`` in the query. A wrong workflow or signature
    gets 404/401, as from Microsoft; otherwise ``status`` (202 by default, like the real thing).
    """

    port: int
    workflow: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    signature: str = "Sx7Qe2_kLm9-ZpT4vW8yR1nB3cD5fG6hJ0aU"
    status: int = 202
    posts: list[Post] = field(default_factory=list)
    rejected: list[Post] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The workflows:// URL for Apprise (verify=no: the certificate is self-signed)."""
        return f"workflows://127.0.0.1:{self.port}/{self.workflow}/{self.signature}?verify=no"

    #: A Logic Apps host name for the native URL: Apprise (2.3 and later) accepts the https://
    #: form only for Microsoft's Logic Apps and Power Platform hosts. ``resolve_native_host``
    #: makes it resolve to this receiver.
    NATIVE_HOST = "prod-00.westeurope.logic.azure.com"

    @property
    def native_url(self) -> str:
        """The https:// form Power Automate shows (without verify=no), on ``NATIVE_HOST``."""
        return (f"https://{self.NATIVE_HOST}:{self.port}/workflows/{self.workflow}/triggers/manual/paths/invoke"
                f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.signature}")

    def resolve_native_host(self, monkeypatch) -> None:
        """Make ``NATIVE_HOST`` resolve to 127.0.0.1 in this process (only that name)."""
        import socket

        real = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            return real("127.0.0.1" if host == self.NATIVE_HOST else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def url_for(self, workflow: str | None = None, signature: str | None = None) -> str:
        return (f"workflows://127.0.0.1:{self.port}/{workflow or self.workflow}/"
                f"{signature or self.signature}?verify=no")


def _make_handler(receiver: TeamsReceiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = raw.decode("utf-8", "replace")
            post = Post(parts.path, parse_qs(parts.query), body)
            expected_path = f"/workflows/{receiver.workflow}/triggers/manual/paths/invoke"
            if parts.path != expected_path:
                status = 404
            elif post.query.get("sig") != [receiver.signature]:
                status = 401
            else:
                status = receiver.status
            (receiver.posts if 200 <= status < 300 else receiver.rejected).append(post)
            reply = b"" if status == 202 else json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):  # keep the test output quiet
            pass

    return Handler


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made once per session with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def teams_receiver(tls_certificate):
    receiver = TeamsReceiver(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(receiver))
    server.socket = _server_tls_context(tls_certificate).wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


# --- settings ---------------------------------------------------------------------------------

def settings_for(smtp_server: SmtpServer | None = None, **overrides: Any):
    """Settings pointing at the test servers: plain SMTP on the server's port, Teams TLS unchecked.

    Sections in ``overrides`` are merged into the defaults given here, e.g.
    ``settings_for(smtp_server, smtp={"timeout_seconds": 2}, alerts={...})``.
    """
    from watchdog.settings import load_settings

    smtp: dict[str, Any] = {"host": "127.0.0.1", "port": smtp_server.port if smtp_server else 25,
                            "mode": "plain", "timeout_seconds": 5,
                            "from_address": "frister@kommune.example.dk", "from_name": "Frister"}
    delivery: dict[str, Any] = {"teams_verify_tls": False}
    smtp.update(overrides.pop("smtp", {}))
    delivery.update(overrides.pop("delivery", {}))
    return load_settings(None, smtp=smtp, delivery=delivery, **overrides)


@pytest.fixture
def delivery_settings(smtp_server):
    """Settings for sending to ``smtp_server`` (and any ``teams_receiver`` URL)."""
    return settings_for(smtp_server)
