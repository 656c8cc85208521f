"""Stage 5b, delivery: send one rendered message to one recipient through Apprise.

I/O: the network (SMTP, HTTPS), through Apprise: the only module that sends (``apprise_email`` holds
its stand-ins inside Apprise's email plugin, and sends nothing itself). Its contract is one
call, ``Transport(settings).send(message, recipient) -> SendResult``, which never raises for a
delivery failure: the result says whether it worked, the error text, and whether a retry can help
(``permanent``). Retries belong to the outbox (they survive a restart), so Apprise's own stay off.

How each channel is built (checked against apprise 2.2's plugins):

- **Email** (``mailto://`` for plain SMTP, ``mailtos://`` with ``mode=starttls|ssl``): one URL per
  recipient, so each recipient gets its own result. The SMTP server is pinned with ``smtp=`` so
  that Apprise never swaps in a provider's defaults guessed from an address. Apprise sends an
  HTML body as ``multipart/alternative``; it has no way to take our own text part, so the
  ``text/plain`` part would be Apprise's conversion of our HTML, which puts every table cell on
  a line of its own and drops the links. ``apprise_email.own_text_part`` therefore hands Apprise's
  email plugin our own ``Message.text`` for exactly that conversion (and nothing else), so the plain
  part is the text ``render`` wrote to be read on its own.
- **Teams** (``workflows://HOST/WORKFLOW/SIGNATURE`` or the native ``https://…/workflows/…`` URL):
  our own Adaptive Card goes in through the plugin's ``template=`` option (a JSON file holding
  the whole ``{"type": "message", "attachments": [...]}`` payload; Apprise validates and posts
  it as is). A 200/202 means the workflow *accepted* the post, not that anybody read it:
  ``SendResult.accepted_only``.

Apprise opens an SMTP connection, and reads the system's CA bundle, for every ``notify()``, and
has no way to keep a connection across messages; ``apprise_email`` adjusts that from inside
Apprise's email plugin: one TLS context per process, and within ``Transport.round()`` (a delivery
round) one connection for many messages, each message still its own ``notify()`` and outcome.
The email URL differs between recipients only in the address, so Apprise parses it once per relay
and login (``_parsed_email_url``); each send's fresh plugin is made from a copy with its address in.

Apprise reports errors only through its logger, so each send captures the log lines of its own
thread (``apprise_log``) and puts them in ``SendResult.detail``, with passwords and workflow
signatures masked.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import apprise

from watchdog.apprise_email import RoundSMTPController, SharedTlsContexts, encoded_subject, own_text_part
from watchdog.apprise_log import capture as _capture_apprise
from watchdog.apprise_log import hold as _hold
from watchdog.outbox import Channel
from watchdog.render import Message, simple_card
from watchdog.sensitive import message_sensitive
from watchdog.settings_urls import check_teams_url, mask_url

log = logging.getLogger(__name__)

_DETAIL_MAX = 1000
_EMAIL_RE = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
# HTTP statuses that say "try again later"; every other 4xx says "this will never work".
_HTTP_TRANSIENT_4XX = frozenset({408, 425, 429})
# SMTP replies that say "the login failed": a configuration error an operator can fix, after
# which the queued alerts should still go out, so not permanent.
_SMTP_AUTH_CODES = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class Recipient:
    """Where a message goes: an email address (channel email) or a Teams workflow URL (teams)."""

    address: str
    channel: Channel
    name: str | None = None


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send. ``permanent``: retrying cannot help. ``accepted_only``: a Teams
    workflow took the post (HTTP 2xx); that it was shown in Teams is not known."""

    ok: bool
    detail: str
    permanent: bool = False
    accepted_only: bool = False


class Transport:
    """Apprise behind one call. Builds a fresh plugin instance per send (see ``_instantiate``);
    within ``round()`` the SMTP connection is kept from one message to the next."""

    def __init__(self, settings):
        self.settings = settings

    # -- public --------------------------------------------------------------------------------

    @contextmanager
    def round(self) -> Iterator[None]:
        """A delivery round: the emails sent on this thread inside it share SMTP connections
        (``RoundSMTPController``); every connection is closed (QUIT) at its end. The apprise logger
        is lowered to DEBUG once for the round (``apprise_log.hold``), not once per send."""
        with RoundSMTPController.round(self.settings.smtp.messages_per_connection), _hold():
            yield

    def send(self, message: Message, recipient: Recipient) -> SendResult:
        """Send ``message`` to ``recipient``; never raises for a delivery failure."""
        hits = message_sensitive(message)
        if hits:
            # Invariant 5: never let a CPR number out, even if a case reference or a prerendered
            # payload carries one. The number itself is not repeated in the detail.
            return SendResult(ok=False, permanent=True,
                              detail=f"refused: the message contains {len(hits)} CPR-like number(s)")
        channel = Channel(recipient.channel)
        try:
            if channel == Channel.EMAIL:
                return self._send_email(message, recipient)
            return self._send_teams(message, recipient)
        except Exception as exc:  # a bug in Apprise or here must not lose the alert: record it
            log.exception("delivery: unexpected error sending via %s", channel.value)
            return SendResult(ok=False, permanent=False,
                              detail=_one_line(f"unexpected {type(exc).__name__}: {exc}"))

    def email_url(self, address: str) -> str:
        """The Apprise URL for one email recipient (the password in it is a secret)."""
        smtp = self.settings.smtp
        scheme = "mailto" if smtp.mode == "plain" else "mailtos"
        auth = ""
        if smtp.username:
            auth = quote(smtp.username, safe="")
            if smtp.password is not None:
                auth += ":" + quote(smtp.password.get_secret_value(), safe="")
            auth += "@"
        host = f"[{smtp.host}]" if ":" in smtp.host else smtp.host
        params = {
            "to": address,
            "from": smtp.from_address,
            "name": smtp.from_name,
            "smtp": smtp.host,
            "cto": str(smtp.timeout_seconds),
            "rto": str(smtp.timeout_seconds),
        }
        if smtp.mode != "plain":
            params["mode"] = smtp.mode
            if not smtp.verify_tls:
                params["verify"] = "no"
        query = "&".join(f"{k}={quote(v, safe='@')}" for k, v in params.items())
        return f"{scheme}://{auth}{host}:{smtp.port}/?{query}"

    def teams_url(self, url: str, *, template_path: str | None = None) -> str:
        """The Apprise URL for a Teams workflow, with our card template and TLS choice added."""
        extra = ["image=no", "rto=30"]
        if not self.settings.delivery.teams_verify_tls:
            extra.append("verify=no")
        if template_path:
            extra.append("template=" + quote(template_path, safe=""))
        sep = "&" if "?" in url else "?"
        return url + sep + "&".join(extra)

    # -- email ---------------------------------------------------------------------------------

    def _email_target(self, address: str) -> str | dict:
        """What Apprise instantiates the email plugin from: the URL Apprise parsed once for this
        relay (``_parsed_email_url``) with ``address`` put in as its recipient, or the URL itself
        when that parse did not have the expected shape."""
        template = _parsed_email_url(self.email_url(_PLACEHOLDER_ADDRESS))
        if template is None:
            return self.email_url(address)
        results = copy.deepcopy(template)
        results["targets"] = [address]
        results["qsd"]["to"] = address
        return results

    def _send_email(self, message: Message, recipient: Recipient) -> SendResult:
        address = recipient.address.strip()
        if not _EMAIL_RE.match(address):
            return SendResult(ok=False, permanent=True, detail=f"malformed email address {address!r}")
        secrets = [self.settings.smtp.password.get_secret_value()] if self.settings.smtp.password else []
        where = f"{self.settings.smtp.host}:{self.settings.smtp.port}"
        verify = self.settings.smtp.verify_tls or self.settings.smtp.mode == "plain"
        with _capture_apprise() as lines, SharedTlsContexts.use(verify=verify):
            plugin = _instantiate(self._email_target(address))
            # A Danish subject goes in encoded already (``encoded_subject``: Apprise's encoder is slow).
            subject = (encoded_subject(message.subject, max_length=plugin.title_maxlen)
                       if plugin is not None else message.subject)
            with own_text_part(message, subject=subject):
                ok = plugin is not None and plugin.notify(
                    body=message.html, title=subject, body_format=apprise.NotifyFormat.HTML)
        detail = _detail(lines, secrets)
        if plugin is None:
            return SendResult(ok=False, permanent=True, detail=f"Apprise refused the email URL: {detail}")
        if ok:
            return SendResult(ok=True, detail=f"SMTP server {where} accepted the message for {address}")
        permanent = _smtp_failure_is_permanent(detail)
        return SendResult(ok=False, permanent=permanent,
                          detail=_one_line(f"email to {address} via {where} failed: {detail}"))

    # -- Teams ---------------------------------------------------------------------------------

    def _send_teams(self, message: Message, recipient: Recipient) -> SendResult:
        address = recipient.address.strip()
        masked = mask_url(address)
        try:
            check_teams_url(address)
        except ValueError as exc:
            return SendResult(ok=False, permanent=True, detail=_one_line(str(exc)))
        card = message.card or simple_card(message.subject, message.text)
        payload = {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
        secrets = _url_secrets(address)
        with _template_file(payload) as path, _capture_apprise() as lines:
            plugin = _instantiate(self.teams_url(address, template_path=path))
            if plugin is not None:
                secrets.extend(s for s in (getattr(plugin, "signature", None),
                                           getattr(plugin, "workflow", None)) if s)
            # The body is only a fallback token for the template; the card is the message.
            ok = plugin is not None and plugin.notify(body=message.subject, title=message.subject)
        detail = _detail(lines, secrets)
        if plugin is None:
            return SendResult(ok=False, permanent=True,
                              detail=_one_line(f"Apprise refused the Teams URL {masked}: {detail}"))
        if ok:
            return SendResult(ok=True, accepted_only=True,
                              detail=f"Teams workflow {masked} accepted the card (HTTP 2xx); "
                                     "accepted, not proof that it was posted or read")
        return SendResult(ok=False, permanent=_http_failure_is_permanent(detail),
                          detail=_one_line(f"Teams workflow {masked} failed: {detail}"))


# ---------------------------------------------------------------------------------------------
# Apprise plumbing
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER_ADDRESS = "recipient@watchdog.invalid"


@functools.lru_cache(maxsize=16)
def _parsed_email_url(url: str) -> dict | None:
    """Apprise's parse of the email URL ``url`` (made for ``_PLACEHOLDER_ADDRESS``), read once per
    relay and login: parsing the URL was a tenth of a send. None unless the address shows up only
    as the recipient (``targets`` and the ``to`` parameter), where ``_email_target`` replaces it;
    then every send parses its own URL, as before. The parse holds the relay's password, as the
    settings do. tests/test_delivery.py checks it against Apprise's parse of each address's URL."""
    results = apprise.plugins.url_to_dict(url, secure_logging=apprise.AppriseAsset().secure_logging)
    if (not isinstance(results, dict) or results.get("targets") != [_PLACEHOLDER_ADDRESS]
            or not isinstance(results.get("qsd"), dict) or results["qsd"].get("to") != _PLACEHOLDER_ADDRESS):
        return None
    rest = {k: v for k, v in results.items() if k not in ("targets", "qsd")}
    rest["qsd"] = {k: v for k, v in results["qsd"].items() if k != "to"}
    if _PLACEHOLDER_ADDRESS in repr(rest):
        return None
    return results


def _instantiate(url: str | dict):
    """A fresh Apprise plugin for ``url`` (a URL, or Apprise's parse of one), or None when Apprise
    cannot parse it.

    Fresh per send, because a reused instance throttles itself to one send per 5.5 s and
    remembers recipients it has delivered to; ``request_rate_per_sec = 0`` as well, in case a
    plugin throttles on its first send.
    """
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    plugin.request_rate_per_sec = 0
    return plugin


@contextmanager
def _template_file(payload: dict) -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="watchdog-card-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


_KEEP_DEBUG = ("Socket Exception", "Response Details", "JSONDecodeError", "SMTP", "Invalid", "Unsupported")


def _detail(records: list[tuple[int, str]], secrets: list[str] | None = None) -> str:
    """The useful part of Apprise's log: warnings and errors, and the debug lines with the cause."""
    lines = []
    for level, text in records:
        if level >= logging.WARNING or (level >= logging.DEBUG and text.startswith(_KEEP_DEBUG)
                                        and not text.startswith("SMTP Host")):
            lines.append(text)
    text = " | ".join(dict.fromkeys(_one_line(x) for x in lines)) or "no detail from Apprise"
    return _scrub(text, secrets or [])


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "********")
        text = text.replace(quote(secret, safe=""), "********")
    return re.sub(r"(?i)\b(sig|signature)=[^&\s'\"]+", r"\1=********", text)


def _url_secrets(url: str) -> list[str]:
    """The secret parts of a workflow URL: its signature and workflow id."""
    parts = urlsplit(url)
    found = re.findall(r"(?:^|&)(?:sig|signature)=([^&]+)", parts.query)
    if parts.scheme.lower() in ("workflows", "workflow"):
        found += [p for p in parts.path.split("/") if p]
    else:
        m = re.search(r"/workflows/([^/]+)", parts.path)
        if m:
            found.append(m.group(1))
    return found


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Failure classification
# ---------------------------------------------------------------------------------------------

_SMTP_CODE_RE = re.compile(r"\((\d{3}),")
_HTTP_CODE_RE = re.compile(r"error=(\d{3})")


def _smtp_failure_is_permanent(detail: str) -> bool:
    """Permanent: the server rejected the message or recipient for good (5xx, not an auth failure).

    Connection refused, timeouts, TLS trouble and 4xx replies are transient: the outbox retries.
    """
    if "no Email recipients" in detail or "Dropped invalid To email" in detail:
        return True
    codes = [int(c) for c in _SMTP_CODE_RE.findall(detail)]
    if not codes:
        return False
    return any(500 <= c < 600 and c not in _SMTP_AUTH_CODES for c in codes)


def _http_failure_is_permanent(detail: str) -> bool:
    """Permanent: a 4xx answer other than 408/425/429 (wrong URL, revoked signature, bad card).

    A 5xx, a 429, a timeout or a refused connection is transient.
    """
    if "workflow template" in detail.lower():
        return True  # our card was refused by Apprise itself: resending the same card cannot help
    codes = [int(c) for c in _HTTP_CODE_RE.findall(detail)]
    if not codes:
        return False
    code = codes[-1]
    return 400 <= code < 500 and code not in _HTTP_TRANSIENT_4XX
