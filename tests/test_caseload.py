"""The caseload report reproduces the memo's numbers and counts only active cases and caseworkers."""

from __future__ import annotations

from decimal import Decimal

from report_helpers import Builder, local
from watchdog.casestore import WorkerRole
from watchdog.reports.caseload import caseload_report, caseload_row, compute_caseload, TeamLoad

NOW = local("2020-03-26T12:00")


def test_memo_890_cases_on_23_92_fte_is_37_2_per_fte_and_needs_5_75_to_11_68_more_posts():
    row = caseload_row("Familierådgivningen", 890, 23.92, 32)
    assert row.per_fte == Decimal("37.2")
    assert row.extra_fte == {30: Decimal("5.75"), 25: Decimal("11.68")}
    assert row.verdict == "over anbefalingen"


def test_a_team_within_the_recommendation_needs_no_extra_posts():
    row = caseload_row("Småt", 50, 2.0, 2)
    assert row.per_fte == Decimal("25.0") and row.extra_fte == {30: Decimal("0.00"), 25: Decimal("0.00")}
    assert row.verdict == "inden for anbefalingen"
    assert caseload_row("Tomt", 3, 0, 0).per_fte is None


def test_total_row_adds_teams_before_dividing():
    report = compute_caseload([TeamLoad("A", 450, 11.5, 12), TeamLoad("B", 440, 12.42, 14)], as_of=NOW)
    assert report.total.cases == 890 and report.total.fte == Decimal("23.92")
    assert report.total.per_fte == Decimal("37.2")
    assert report.total.extra_fte[30] == Decimal("5.75") and report.total.extra_fte[25] == Decimal("11.68")


def test_caseload_from_the_store_counts_active_cases_and_active_caseworkers_fte(session):
    b = Builder(session)
    team = b.team("FAM", "Familierådgivningen")
    for _ in range(23):
        b.worker(team, "Rådgiver")
    b.worker(team, "Deltid", fte=0.92)
    b.worker(team, "Leder", role=WorkerRole.LEADER)  # leads, carries no cases
    b.worker(team, "Fratrådt", active=False)
    b.worker(None, "Uden team")
    for i in range(890):
        b.case(team, opened="2019-05-01")
    b.case(team, opened="2019-01-01", closed="2020-01-15")  # closed before now
    b.case(team, opened="2020-04-01")  # opened after now
    b.case(team, opened="2019-01-01", closed="2020-04-15")  # closed only later: still active now
    session.commit()
    report = caseload_report(session, now=NOW)
    (row,) = report.rows
    assert row.cases == 891 and row.fte == Decimal("23.92") and row.caseworkers == 24
    assert row.per_fte == Decimal("37.2")
