"""Stand-ins inside Apprise's email plugin, so that Apprise still does all the talking to the
network (``delivery`` is the only module that sends; this one only adjusts how Apprise does it).

- ``own_text_part``: the ``text/plain`` part of an email is our own ``Message.text``, not
  Apprise's conversion of our HTML (which puts every table cell on a line of its own).
- ``encoded_subject``: a non-ASCII subject goes to Apprise already encoded (RFC 2047), because
  the standard library's encoder that Apprise's ``Header`` uses takes about 1 ms for it.
- ``SharedTlsContexts``: Apprise's SMTP controller calls ``ssl.create_default_context()`` (reading
  the system's CA bundle) for every connection, even plain SMTP; it gets one per process.
- ``RoundSMTPController``: Apprise opens an SMTP connection per ``notify()`` (connect, EHLO,
  STARTTLS, login, the one body's messages, QUIT) and has no way to keep it across calls, and a
  ``notify()`` sends one body to all its targets, so messages with different bodies cannot share
  a call. Within ``RoundSMTPController.round()`` (``Transport.round``: a delivery round) its
  controller is kept open after a message and lent to the next ``notify()`` for the same relay
  and login, up to ``smtp.messages_per_connection`` messages. Each message is still its own
  ``notify()`` with its own result, ok only when the server answered 250 to it. A failed send
  closes the connection (the next message opens a new one), so a connection that dies mid-round
  fails only the message in flight, and those after it only if no new connection can be opened;
  a connection idle for more than ``IDLE_CHECK_SECONDS`` is checked with NOOP before it is lent.

Each stand-in falls back to Apprise's own behaviour when Apprise's layout differs (checked with Apprise
2.3, the version in constraints.txt; tests/test_delivery_connection_reuse.py fails if the round's
connection stops being kept).
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import quoprimime

import apprise

from watchdog.render import Message

_own_text = threading.local()


def _convert_with_own_text(from_format, to_format, content, *args, **kwargs):
    """Apprise's ``convert_between`` as its email plugin sees it: the HTML → text conversion of
    the message being sent on this thread gives that message's own text; all else is Apprise's."""
    mine = getattr(_own_text, "message", None)
    # Apprise strips the body before it converts it.
    if (mine is not None and (content or "").strip() == mine.html.strip() and from_format == apprise.NotifyFormat.HTML
            and to_format == apprise.NotifyFormat.TEXT and mine.text):
        return mine.text
    return _apprise_convert_between(from_format, to_format, content, *args, **kwargs)


try:  # the email plugin converts the HTML body for its text/plain part with this function
    import apprise.plugins.email.base as _email_base

    _apprise_convert_between = _email_base.convert_between
    _email_base.convert_between = _convert_with_own_text
except (ImportError, AttributeError):  # another Apprise layout: its own conversion is used
    _email_base = None


# RFC 2047: an encoded-word is at most 75 characters, and a line holding one at most 76; the first
# line also holds "Subject: ".
_WORD_MAX = 75
_FIRST_WORD_MAX = 76 - len("Subject: ")
_CHROME = len("=?utf-8?q??=")


def encoded_subject(subject: str, *, max_length: int) -> str:
    """``subject`` as RFC 2047 Q-encoded words (UTF-8), the way the standard library's ``Header``
    writes it for Apprise, but in linear time (its header encoder tries every prefix of a line,
    about 1 ms for a Danish subject). Apprise then sends it as the ASCII header it is, folded
    between the words; every reader decodes it back to ``subject``.

    Whitespace is collapsed first, as Apprise does. An ASCII subject, or one whose encoding would
    pass ``max_length`` (Apprise's ``title_maxlen``: it would cut the encoded text), comes back as
    it is, for Apprise to encode."""
    subject = " ".join(subject.split())
    if subject.isascii() or len(subject) > max_length:
        return subject
    words, word, size, limit = [], [], 0, _FIRST_WORD_MAX - _CHROME
    for char in subject:
        length = quoprimime.header_length(char.encode("utf-8"))
        if size + length > limit and word:
            words.append("".join(word))
            word, size, limit = [], 0, _WORD_MAX - _CHROME
        word.append(char)
        size += length
    words.append("".join(word))
    encoded = " ".join(quoprimime.header_encode(w.encode("utf-8"), charset="utf-8") for w in words)
    return encoded if len(encoded) <= max_length else subject


def _fold_own_subject(text: str) -> str:
    """The prepared email ``text`` with our encoded subject (``own_text_part(subject=…)``) folded
    between its words: Apprise collapses whitespace in a subject and writes headers unfolded, and
    RFC 2047 wants a line holding encoded-words to stay within 76 characters."""
    subject = getattr(_own_text, "subject", None)
    if not subject or " " not in subject or not subject.startswith("=?"):
        return text
    line = f"Subject: {subject}\n"
    at = text.find(line, 0, text.find("\n\n") + 1)
    if at < 0:
        return text
    return text[:at] + "Subject: " + subject.replace(" ", "\n ") + "\n" + text[at + len(line):]


@contextmanager
def own_text_part(message: Message, *, subject: str | None = None) -> Iterator[None]:
    """While sending ``message`` on this thread, its text/plain part is ``message.text``; and
    ``subject``, when given, is the ``encoded_subject`` handed to Apprise (folded on the way out)."""
    _own_text.message, _own_text.subject = message, subject
    try:
        yield
    finally:
        _own_text.message = _own_text.subject = None


class SharedTlsContexts:
    """Stands in for the ``ssl`` module inside Apprise's SMTP controller: ``create_default_context()``
    returns one context per process and verification choice instead of a new one per connection.

    An ``SSLContext`` is safe to share between connections and threads. Apprise only ever weakens
    a context it made (``check_hostname = False``, ``CERT_NONE``) when verification is off, so the
    shared unverified context is made that way up front and the verified one is never touched.
    Outside ``use()`` (another caller of that module) the real function runs. The CA bundle is read
    at the first TLS send: a changed bundle needs a restart, as for any long-running TLS client.
    """

    _verify: contextvars.ContextVar[bool | None] = contextvars.ContextVar("watchdog_tls_verify", default=None)
    _contexts: dict[bool, ssl.SSLContext] = {}
    _lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(ssl, name)

    def create_default_context(self, *args, **kwargs) -> ssl.SSLContext:
        verify = self._verify.get()
        if verify is None or args or kwargs:
            return ssl.create_default_context(*args, **kwargs)
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                context = ssl.create_default_context()
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._contexts[verify] = context
        return context

    @classmethod
    @contextmanager
    def use(cls, *, verify: bool) -> Iterator[None]:
        token = cls._verify.set(verify)
        try:
            yield
        finally:
            cls._verify.reset(token)

    @classmethod
    def install(cls) -> bool:
        """Put the stand-in into Apprise's SMTP controller module (apprise 2.x); False if absent."""
        try:
            from apprise.plugins.email import smtp as apprise_smtp
        except ImportError:  # an Apprise without the controller module: nothing to share
            return False
        if not isinstance(getattr(apprise_smtp, "ssl", None), cls):
            apprise_smtp.ssl = cls()
        return True


SharedTlsContexts.install()

try:  # Apprise's email plugin opens its connections with this class
    from apprise.plugins.email.smtp import SMTP_EXCEPTIONS as _SMTP_EXCEPTIONS
    from apprise.plugins.email.smtp import AppriseSMTPController as _AppriseSMTPController
except ImportError:  # another Apprise layout: a connection per message, as Apprise does
    _AppriseSMTPController = None


class _RoundPool:
    """The open controllers of one round on one thread, by relay and login."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open: dict[tuple, RoundSMTPController] = {}

    def close(self) -> None:
        for controller in self.open.values():
            controller.close()
        self.open.clear()


IDLE_CHECK_SECONDS = 5.0

if _AppriseSMTPController is not None:
    class RoundSMTPController(_AppriseSMTPController):
        """Apprise's SMTP controller, kept open within a round (see the module docstring).

        Apprise uses it as ``with AppriseSMTPController(...) as smtp: smtp.sendmail(...)``: inside
        a round, ``__enter__`` lends the round's open controller for the same relay and login (or
        connects this one and keeps it), and ``__exit__`` leaves it open unless the send failed,
        raised, or used up ``messages_per_connection``. Outside a round it is Apprise's own."""

        _pool: contextvars.ContextVar[_RoundPool | None] = contextvars.ContextVar(
            "watchdog_smtp_round", default=None)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._lent: RoundSMTPController | None = None
            self._broken = False
            self._sent = 0
            self._last_used = time.monotonic()

        def _key(self) -> tuple:
            return (self.host, self.port, self.secure_mode, self.user, self.password, self.verify_certificate)

        def _usable(self) -> bool:
            if self._socket is None or self._broken:
                return False
            if time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
                try:  # a relay may have dropped an idle connection: find out before lending it
                    return self._socket.noop()[0] == 250
                except _SMTP_EXCEPTIONS:
                    return False
            return True

        def __enter__(self):
            pool = self._pool.get()
            if pool is None:
                return super().__enter__()
            held = pool.open.get(self._key())
            if held is not None and held._usable():
                self._lent = held
                return held
            if held is not None:
                held.close()
                del pool.open[self._key()]
            super().__enter__()  # connect, secure, log in: raises as Apprise's does
            pool.open[self._key()] = self
            self._lent = self
            return self

        def sendmail(self, from_addr: str, to_addrs: list, message: str) -> bool:
            ok = super().sendmail(from_addr, to_addrs, _fold_own_subject(message))
            self._sent += 1
            self._last_used = time.monotonic()
            if not ok:  # refused or disconnected: never lend this connection again
                self._broken = True
            return ok

        def __exit__(self, exc_type, exc_val, exc_tb) -> None:
            pool = self._pool.get()
            used = self._lent
            if pool is None or used is None:
                return super().__exit__(exc_type, exc_val, exc_tb)
            if exc_type is not None or used._broken or used._sent >= pool.limit:
                used.close()
                if pool.open.get(used._key()) is used:
                    del pool.open[used._key()]
            return None

        def close(self) -> None:
            """QUIT and forget the connection (a dead one is simply dropped)."""
            if self._socket is not None:
                with contextlib.suppress(*_SMTP_EXCEPTIONS):
                    self._socket.quit()
                with contextlib.suppress(*_SMTP_EXCEPTIONS):
                    self._socket.close()
                self._socket = None

        @classmethod
        @contextmanager
        def round(cls, limit: int) -> Iterator[None]:
            if cls._pool.get() is not None:  # already in a round on this thread: share it
                yield
                return
            pool = _RoundPool(limit)
            token = cls._pool.set(pool)
            try:
                yield
            finally:
                cls._pool.reset(token)
                pool.close()

    import apprise.plugins.email.base as _email_plugin

    _email_plugin.AppriseSMTPController = RoundSMTPController
else:  # pragma: no cover - another Apprise layout
    class RoundSMTPController:  # type: ignore[no-redef]
        @classmethod
        @contextmanager
        def round(cls, limit: int) -> Iterator[None]:
            yield
