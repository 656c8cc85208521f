"""Stage 1 intake: API tokens for the HTTP ingest API. I/O: the database (table ``api_token``).

A token looks like ``wdt_<prefix>_<secret>``. Only its SHA-256 hash is stored, with the prefix
in clear for lookup, so a stolen database does not give working tokens; the token is shown once,
when created. SHA-256 without a salt is enough here: the secret is 32 random bytes, not a password.
Scopes: ``read`` (GET deadlines) and ``write`` (POST records); a token may hold both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, Session, SQLModel, select

from watchdog.clock import ensure_aware
from watchdog.secret_tokens import matches, new_token, token_hash
from watchdog.errors import WatchdogError

TOKEN_PREFIX = "wdt"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(unique=True, index=True, max_length=16)
    token_hash: str = Field(max_length=64)  # SHA-256 hex of the whole token
    name: str = Field(max_length=200)  # who or what uses it, e.g. "case system nightly push"
    scopes: str = Field(max_length=100)  # comma-separated Scope values
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def scope_set(self) -> frozenset[Scope]:
        return frozenset(Scope(s) for s in self.scopes.split(",") if s)


class TokenError(WatchdogError):
    """A token command was given something it cannot do (unknown token, bad scope)."""


class AuthFailure(Exception):
    """Why a request's token was refused: ``reason`` is one of missing, invalid, revoked."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once
    record: ApiToken




def create_token(session: Session, *, name: str, scopes: set[Scope] | set[str], now: datetime) -> NewToken:
    """Create a token; the clear text is in the result and nowhere else."""
    if not name.strip():
        raise TokenError("a token needs a name saying who uses it")
    try:
        scope_values = sorted({Scope(s).value for s in scopes})
    except ValueError:
        raise TokenError(f"unknown scope in {sorted(scopes)}: use read and/or write") from None
    if not scope_values:
        raise TokenError("a token needs at least one scope (read, write)")
    prefix, token = new_token(TOKEN_PREFIX)
    record = ApiToken(prefix=prefix, token_hash=token_hash(token), name=name.strip()[:200],
                      scopes=",".join(scope_values), created_at=ensure_aware(now))
    session.add(record)
    session.flush()
    return NewToken(token, record)


def authenticate(session: Session, authorization: str | None) -> ApiToken:
    """The token of an ``Authorization: Bearer …`` header, or AuthFailure saying why not."""
    if not authorization or not authorization.strip():
        raise AuthFailure("missing", "missing token: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthFailure("missing", "missing token: the Authorization header must be 'Bearer <token>'")
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise AuthFailure("invalid", "invalid token")
    record = session.exec(select(ApiToken).where(ApiToken.prefix == parts[1])).first()
    if record is None or not matches(record.token_hash, token):
        raise AuthFailure("invalid", "invalid token")
    if record.revoked_at is not None:
        raise AuthFailure("revoked", f"token {record.prefix} was revoked")
    return record


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, prefix: str, *, now: datetime) -> ApiToken:
    """Revoke by prefix (as ``token list`` shows it). Revoking twice keeps the first time."""
    prefix = prefix.strip()
    if prefix.startswith(TOKEN_PREFIX + "_"):  # the whole token pasted
        prefix = prefix.split("_", 2)[1]
    record = session.exec(select(ApiToken).where(ApiToken.prefix == prefix)).first()
    if record is None:
        raise TokenError(f"no token with prefix {prefix!r} (see `watchdog token list`)")
    if record.revoked_at is None:
        record.revoked_at = ensure_aware(now)
    return record
