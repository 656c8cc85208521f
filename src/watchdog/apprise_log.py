"""Apprise's log, read per send: Apprise reports a send's errors only through its logger, and the
real cause (the SMTP reply, the socket error) only at DEBUG level. ``capture()`` collects the
records of the sending thread; ``hold()`` keeps the logger at DEBUG behind a filter that lets
through only what the application asked to see (a delivery round holds it once for all its sends).

I/O: none (the logging module's state only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from apprise.logger import LOGGER_NAME

_level_lock = threading.Lock()
_holds = 0  # rounds and sends under way: while any is, the apprise logger is at DEBUG
_saved_level = logging.NOTSET  # the apprise logger's own level before the first hold
_filter: _Captures | None = None


class _Captures(logging.Filter):
    """Collects the apprise log records of each capturing thread; keeps the extra DEBUG ones from
    spreading.

    Apprise puts the real error (the SMTP reply, the socket error) only at DEBUG level. To read
    it, the apprise logger is lowered to DEBUG while a round or a send is under way (``hold``);
    this filter then drops every record below the level the application had configured, so the
    service's own log handlers (and other threads) see exactly what they saw before, and never
    the payload dumps.
    """

    def __init__(self, quiet_below: int):
        super().__init__()
        self.quiet_below = quiet_below
        self.threads: dict[int, list[tuple[int, str]]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        records = self.threads.get(record.thread)
        if records is not None:
            try:
                records.append((record.levelno, record.getMessage()))
            except Exception:  # noqa: BLE001 (a broken format string must not break a send)
                records.append((record.levelno, str(record.msg)))
        return record.levelno >= self.quiet_below


@contextmanager
def hold() -> Iterator[_Captures]:
    """The apprise logger at DEBUG, behind ``_Captures``, for as long as any hold is under way.
    Lowering a logger's level clears every logger's cache: a round holds it once for all its sends."""
    global _holds, _saved_level, _filter
    logger = logging.getLogger(LOGGER_NAME)
    with _level_lock:
        if _holds == 0:
            _saved_level = logger.level
            _filter = _Captures(logger.getEffectiveLevel())
            logger.setLevel(logging.DEBUG)
            logger.addFilter(_filter)
        _holds += 1
        captures = _filter
    try:
        yield captures
    finally:
        with _level_lock:
            _holds -= 1
            if _holds == 0:
                logger.removeFilter(captures)
                logger.setLevel(_saved_level)
                _filter = None


@contextmanager
def capture() -> Iterator[list[tuple[int, str]]]:
    """The apprise log records of this thread while inside (a send)."""
    records: list[tuple[int, str]] = []
    thread = threading.get_ident()
    with hold() as captures:
        outer = captures.threads.get(thread)
        captures.threads[thread] = records
        try:
            yield records
        finally:
            if outer is None:
                captures.threads.pop(thread, None)
            else:
                captures.threads[thread] = outer
