"""The one template environment for every HTML the service writes: web pages, email HTML, reports.

No I/O beyond reading the package's own templates (``src/watchdog/templates/``). Autoescape is on
for ``.html`` templates, so a case reference or a name can never inject markup. Filters that format
for Danish readers live here, so a page, an email and a report show a date the same way.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from watchdog.clock import LOCAL_TZ


def _dk_date(value: date | datetime | None) -> str:
    """dd-mm-yyyy in Europe/Copenhagen (an instant is converted first); empty for None."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(LOCAL_TZ).date()
    return value.strftime("%d-%m-%Y")


def _dk_datetime(value: datetime | None) -> str:
    """dd-mm-yyyy kl. HH:MM in Europe/Copenhagen; empty for None."""
    if value is None:
        return ""
    return value.astimezone(LOCAL_TZ).strftime("%d-%m-%Y kl. %H:%M")


@cache
def environment() -> Environment:
    """The shared Jinja2 environment (built once per process)."""
    env = Environment(
        loader=PackageLoader("watchdog", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True),
        undefined=StrictUndefined,  # a misspelt variable is an error, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["dk_date"] = _dk_date
    env.filters["dk_datetime"] = _dk_datetime
    return env


def render(template: str, **context: object) -> str:
    """Render one of the package's templates by name (e.g. ``"email/alert.html"``)."""
    return environment().get_template(template).render(**context)
