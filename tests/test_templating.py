"""The shared template environment escapes markup and formats dates for Danish readers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from jinja2 import UndefinedError

from watchdog.templating import environment


def test_values_are_escaped_and_dates_are_danish_in_local_time():
    tpl = environment().from_string("{{ ref }} {{ d | dk_date }} {{ t | dk_datetime }} {{ t | dk_date }}")
    out = tpl.render(ref="<b>S-1</b>", d=date(2026, 12, 3), t=datetime(2026, 12, 3, 23, 30, tzinfo=UTC))
    assert out == "&lt;b&gt;S-1&lt;/b&gt; 03-12-2026 04-12-2026 kl. 00:30 04-12-2026"


def test_a_misspelt_variable_is_an_error_not_an_empty_cell():
    with pytest.raises(UndefinedError):
        environment().from_string("{{ missing }}").render()
