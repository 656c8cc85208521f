"""Parsing of the policy's offsets ("30d", "4h", "90m", "receipt"). Pure."""

from __future__ import annotations

import re
from datetime import timedelta

RECEIPT = "receipt"
_OFFSET = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_offset(text: str) -> timedelta | None:
    """An offset before the due time, or None for "receipt" (as soon as the clock starts)."""
    value = text.strip().lower()
    if value == RECEIPT:
        return None
    match = _OFFSET.match(value)
    if not match:
        raise ValueError(f"offset {text!r} is not of the form 30d, 4h, 90m or 'receipt'")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
