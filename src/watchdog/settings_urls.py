"""The URLs in the settings: which are accepted (Teams workflows, operator addresses, loopback
hosts) and how they are shown masked (``mask_url``). Pure; no I/O."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LEGACY_TEAMS_HINT = (
    "Office 365 connector URLs (msteams://, …webhook.office.com/…) were retired by Microsoft; "
    "create a Teams workflow in Power Automate and use its URL as workflows://HOST/WORKFLOW/SIGNATURE "
    "(add ?pa=yes for Power Automate) or the native https://…/workflows/… URL"
)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_teams_url(url: str) -> str:
    """Refuse a retired connector URL with a message that says what to use instead."""
    lowered = url.strip().lower()
    if lowered.startswith("msteams://") or "webhook.office.com" in lowered or "/incomingwebhook/" in lowered:
        raise ValueError(f"legacy Teams connector URL refused: {_LEGACY_TEAMS_HINT}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "workflows":
        return url
    if scheme == "https" and "/workflows/" in lowered:
        return url
    raise ValueError(
        f"not a Teams workflow URL: {url.split('?')[0]!r}; use workflows://HOST/WORKFLOW/SIGNATURE "
        "or the https://…/workflows/… URL of a Power Automate workflow"
    )


def check_apprise_url(url: str) -> str:
    """Validate an operator/heartbeat notification URL: known schemes, no clear-text passwords."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(f"not a URL (no scheme): {url!r}")
    if scheme == "msteams" or "webhook.office.com" in url.lower():
        return check_teams_url(url)
    if scheme == "mailto" and parts.password and not is_loopback(parts.hostname):
        raise ValueError(
            "a password over plain mailto:// to a host that is not loopback would travel in clear "
            "text; use mailtos:// with mode=starttls or mode=ssl"
        )
    return url


def parse_ops_url(url: str) -> tuple[str, str] | None:
    """Where an operator URL points: ``(address, "teams" | "email")``, or None if unusable.

    A Teams workflow URL is used as it is. A ``mailto://``/``mailtos://`` URL names the mailbox
    (``mailto://ops@kommune.dk``, ``mailto://relay/ops@kommune.dk`` or ``?to=ops@kommune.dk``);
    the mail goes through the configured SMTP relay like every other email.
    """
    from urllib.parse import parse_qs, unquote

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "workflows" or (scheme == "https" and "/workflows/" in url.lower()):
        return url, "teams"
    if scheme not in ("mailto", "mailtos"):
        return None
    to = parse_qs(parts.query).get("to")
    if to:
        return to[0].split(",")[0].strip(), "email"
    in_path = [p for p in unquote(parts.path).split("/") if "@" in p]
    if in_path:
        return in_path[0], "email"
    if parts.username and not parts.password and parts.hostname and "." in parts.hostname:
        return f"{unquote(parts.username)}@{parts.hostname}", "email"
    return None




# Query parameters that carry a secret (a heartbeat's ?token=, a signature): the same names the
# log masker hides (watchdog.ops.logs.known_secrets).
SECRET_QUERY_KEYS = ("sig", "signature", "token", "access_token", "apikey", "api_key", "key", "password",
                     "pass", "secret")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:" + "|".join(SECRET_QUERY_KEYS) + r")=)[^&#]+")


def mask_url(url: str) -> str:
    """Hide the password of a URL, its secret query parameters (``?token=``) and the secret path
    of a Teams workflow."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":********@")
        url = url.replace(parts.netloc, netloc, 1)
    if parts.scheme.lower() == "workflows" or "/workflows/" in url.lower():
        base = url.split("?", 1)[0]
        head, _, _secret = base.rpartition("/")
        url = head + "/********"
    return _SECRET_QUERY.sub(r"\1********", url)
