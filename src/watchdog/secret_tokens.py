"""Secret tokens shown once and stored only as a hash: the API's (``wdt_…``) and the calendar
feeds' (``wdc_…``). Pure: no database, no clock.

A token is ``<tag>_<prefix>_<secret>``: the prefix is stored in clear for lookup, the whole token
only as its SHA-256 hash, so a copy of the database gives no working credential.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(tag: str) -> tuple[str, str]:
    """A fresh token for ``tag``: (its prefix, the whole token)."""
    prefix = secrets.token_hex(4)
    return prefix, f"{tag}_{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    """The SHA-256 hex digest that is stored instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches(stored_hash: str, token: str) -> bool:
    """Whether ``token`` is the one whose hash was stored (compared in constant time)."""
    return hmac.compare_digest(stored_hash, token_hash(token))
