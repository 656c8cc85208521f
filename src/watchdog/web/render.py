"""Rendering a page: the shared template environment through Starlette, plus the page frame. No I/O.

Every page template extends ``web/base.html`` (skip link, header with the navigation, ``<main>``);
``page()`` hands it the signed-in user, the navigation for that user's role and the CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from fastapi import Request
from fastapi.templating import Jinja2Templates

from watchdog.render import DUTY_NAMES_DA
from watchdog.reports.digest import format_due
from watchdog.rules.types import Duty, Status
from watchdog.templating import environment
from watchdog.web.security import CSRF_FIELD, csrf_token
from watchdog.web.session import WebUser

STATUS_DA = {
    Status.OPEN: "Åben",
    Status.MET: "Opfyldt",
    Status.MET_LATE: "Opfyldt for sent",
    Status.BREACHED: "Overskredet",
    Status.EXCEPTED: "Lovlig grund",
    Status.NOT_APPLICABLE: "Bortfaldet",
}


def duty_name(duty: Duty | str) -> str:
    text = DUTY_NAMES_DA.get(Duty(duty), str(duty))
    return text[:1].upper() + text[1:]


@cache
def templates() -> Jinja2Templates:
    env = environment()
    env.globals.setdefault("duty_name", duty_name)
    env.globals.setdefault("STATUS_DA", STATUS_DA)
    env.globals.setdefault("CSRF_FIELD", CSRF_FIELD)
    env.globals.setdefault("time_left", time_left)
    env.globals.setdefault("urgency", urgency)
    env.globals.setdefault("due_text", format_due)  # the digest's own: a date-end duty shows its date
    return Jinja2Templates(env=env)


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str


def nav_for(user: WebUser | None) -> list[NavItem]:
    """The links a role can use, in the order a reader expects them."""
    if user is None:
        return []
    items: list[NavItem] = []
    if user.has_own_cases:
        items.append(NavItem("/frister", "Mine frister"))
    if user.is_leader:
        items.append(NavItem("/team", "Team"))
    if user.sees_reports:
        items += [NavItem("/barometer", "Barometer"), NavItem("/sagstal", "Sagstal")]
    if user.is_admin:
        items += [NavItem("/drift", "Drift"), NavItem("/adgangslog", "Adgangslog")]
    else:
        items.append(NavItem("/indstillinger", "Indstillinger"))
    return items


def page(request: Request, template: str, *, user: WebUser | None, title: str, status_code: int = 200,
         **context: object):
    """Render ``templates/web/<template>`` inside the page frame."""
    path = request.url.path
    nav = nav_for(user)
    current = max((n.href for n in nav if path == n.href or path.startswith(n.href + "/")), key=len, default=None)
    return templates().TemplateResponse(
        request, f"web/{template}",
        {"user": user, "title": title, "nav": nav, "current": current, "csrf_token": csrf_token(request),
         "municipality": request.app.state.web.settings.municipality, **context},
        status_code=status_code, headers={"Cache-Control": "no-store"})


def time_left(due: datetime, now: datetime) -> str:
    """Plain Danish: "3 dage tilbage", "5 timer tilbage", "overskredet for 2 dage siden"."""
    seconds = (due - now).total_seconds()
    span = abs(seconds)
    if span < 3600:
        amount = "under 1 time"
    elif span < 48 * 3600:
        hours = int(span // 3600)
        amount = f"{hours} time" if hours == 1 else f"{hours} timer"
    else:
        days = int(span // 86400)
        amount = f"{days} dage"
    return f"{amount} tilbage" if seconds >= 0 else f"overskredet for {amount} siden"


def urgency(due: datetime, now: datetime, status: Status) -> str:
    """A word for the status column (with an icon and a colour in the template): never colour alone."""
    if status == Status.BREACHED or (status == Status.OPEN and due <= now):
        return "overskredet"
    if status == Status.OPEN and due - now <= timedelta(days=7):
        return "snart"
    if status == Status.OPEN:
        return "aaben"
    return "afsluttet"
