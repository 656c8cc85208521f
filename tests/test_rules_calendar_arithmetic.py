"""The fast calendar arithmetic agrees with dateutil's relativedelta, the method LEGAL.md names."""

from __future__ import annotations

from datetime import date

from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from watchdog.rules.calendar import add_months_to_date
from watchdog.rules.measures import age_on

days = st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31))


@given(days, st.integers(min_value=-300, max_value=300))
def test_adding_months_matches_relativedelta_including_the_end_of_month_clamp(day, months):
    assert add_months_to_date(day, months) == day + relativedelta(months=months)


@given(days, days)
def test_age_in_whole_years_matches_relativedelta(birth, day):
    if day >= birth:
        assert age_on(birth, day) == relativedelta(day, birth).years


def test_the_worked_examples_of_the_clamp():
    assert add_months_to_date(date(2024, 10, 31), 4) == date(2025, 2, 28)
    assert add_months_to_date(date(2023, 10, 31), 4) == date(2024, 2, 29)
    assert add_months_to_date(date(2008, 2, 29), 18 * 12) == date(2026, 2, 28)
