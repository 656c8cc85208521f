"""Parsing of the policy's offsets ("30d", "4h", "90m", "receipt") and of periods people type
("14d", "2w", "36h"). Pure."""

from __future__ import annotations

import re
from datetime import timedelta

RECEIPT = "receipt"
_OFFSET = re.compile(r"^(\d+)\s*([wdhm])$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_period(text: str) -> timedelta:
    """A length of time: 2w (weeks), 14d, 36h, 90m."""
    match = _OFFSET.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a period: use a number and w, d, h or m, e.g. 2w, 14d, 36h or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_offset(text: str) -> timedelta | None:
    """An offset before the due time, or None for "receipt" (as soon as the clock starts)."""
    value = text.strip().lower()
    if value == RECEIPT:
        return None
    if not _OFFSET.match(value):
        raise ValueError(f"offset {text!r} is not of the form 30d, 2w, 4h, 90m or 'receipt'")
    return parse_period(value)
