"""Every format of the reports shows the same numbers; spreadsheets never run a cell as a formula;
the HTML renders in headless Chromium with its charts and without errors."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openpyxl import load_workbook

from report_helpers import Builder, ishoj_2023, local
from watchdog.reports import ReportInputError
from watchdog.reports.barometer import I_ALT, Period, barometer_report
from watchdog.reports.caseload import TeamLoad, compute_caseload
from watchdog.reports.output import render, safe_cell

YEAR_2023 = Period(date(2023, 1, 1), date(2023, 12, 31))
NOW = local("2026-11-01T12:00")


@pytest.fixture
def report(session):
    ishoj_2023(session)
    return barometer_report(session, YEAR_2023, now=NOW, municipality="Ishøj Kommune")


def expected(report) -> list[tuple[int, str, int, int | None]]:
    out = []
    for t in report.tables:
        out += [(t.number, r.answer, r.count, r.percent) for r in t.rows]
        out.append((t.number, I_ALT, t.total, 100 if t.total else None))
    return out


def test_expected_rows_hold_the_ishoj_four_month_table(report):
    rows = [r for r in expected(report) if r[0] == report.table("investigation_4m").number]
    assert [r[1:] for r in rows] == [("Ja", 1, 17), ("Nej, men lovlig grund", 0, 0), ("Nej", 5, 83), ("I alt", 6, 100)]


def test_csv_holds_the_same_numbers(report):
    text = render(report, "csv")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["Tabel", "Spørgsmål", "Hjemmel", "Svar", "Antal sager", "Procent"]
    got = [(int(r[0]), r[3], int(r[4]), int(r[5]) if r[5] else None) for r in rows[1:]]
    assert got == expected(report)
    assert any(r[2] == "SEL § 50, stk. 7" for r in rows[1:])


def test_xlsx_read_back_with_openpyxl_holds_the_same_numbers_and_a_chart_per_table(report, tmp_path):
    path = tmp_path / "b.xlsx"
    path.write_bytes(render(report, "xlsx"))
    wb = load_workbook(path)
    ws = wb["Barometer"]
    got, number = [], None
    for a, b, c, *_ in ws.iter_rows(values_only=True):
        if isinstance(a, str) and (m := re.match(r"Tabel (\d+)\. ", a)):
            number = int(m.group(1))
        elif isinstance(b, int) and a != "Svar":
            got.append((number, a, b, c))
    assert got == expected(report)
    assert len(ws._charts) == len(report.tables)
    assert any(isinstance(v, str) and "Hjemmel: SEL § 50, stk. 7" in v for v in ws["A"] if False) or any(
        "Hjemmel: SEL § 50, stk. 7" in str(c.value) for c in ws["A"])
    trend = wb["Udvikling"]
    four = report.table("investigation_4m")
    months = [r for r in trend.iter_rows(min_row=2, values_only=True) if r[0] == four.number]
    assert [(m, n, ja, p) for _, m, n, ja, p, _partial in months] == [(p.month, p.total, p.ja, p.percent) for p in four.trend]


def test_terminal_table_holds_the_same_numbers(report):
    text = render(report, "table")
    got, number = [], None
    for line in text.splitlines():
        if m := re.match(r"\s*Tabel (\d+)\. ", line):
            number = int(m.group(1))
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        cells = [c for c in cells if c]
        if len(cells) == 3 and cells[1].isdigit():
            got.append((number, cells[0], int(cells[1]), None if cells[2] == "–" else int(cells[2].rstrip(" %"))))
    assert got == expected(report)
    assert "Status pr. udgangen af 31-12-2023" in text  # a date-only instant reads as the end of that date


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.sections, self._row, self._cell, self._in = [], [], None, None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("data-key"))
        if tag == "tr":
            self._row = []
        if tag == "td":
            self._cell, self._in = "", True

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None:
            self._row.append(self._cell.strip())
            self._in = False
        if tag == "tr" and self._row:
            self.rows.append((len(self.sections), self._row))
            self._row = None

    def handle_data(self, data):
        if self._in:
            self._cell += data


def html_numbers(html: str):
    p = _Cells()
    p.feed(html)
    return [(n, a, int(c), None if pct == "–" else int(pct.rstrip(" %"))) for n, (a, c, pct) in p.rows], p.sections


def test_html_holds_the_same_numbers_a_chart_per_table_a_trend_per_duty_and_the_citation(report):
    html = render(report, "html")
    got, sections = html_numbers(html)
    assert got == expected(report)
    assert sections == [t.key for t in report.tables]
    assert html.count('class="chart pie"') == len(report.tables)
    assert html.count('class="chart bars"') == len(report.tables)  # the monthly trend per duty
    assert "Hjemmel: SEL § 50, stk. 7" in html
    assert "<script src" not in html and "<link" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_spreadsheet_cells_that_start_like_a_formula_are_neutralised(tmp_path):
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("+45") == "'+45" and safe_cell("-2") == "'-2"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("Ja") == "Ja" and safe_cell(-2) == -2
    report = compute_caseload([TeamLoad('=HYPERLINK("http://x.example","klik")', 40, 1.0, 1),
                               TeamLoad("@team", 10, 1.0, 1)], as_of=NOW)
    rows = list(csv.reader(io.StringIO(render(report, "csv")), delimiter=";"))
    assert rows[1][0] == "'=HYPERLINK(\"http://x.example\",\"klik\")" and rows[2][0] == "'@team"
    path = tmp_path / "c.xlsx"
    path.write_bytes(render(report, "xlsx"))
    ws = load_workbook(path)["Sagstal"]
    cells = [c for c in ws["A"] if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" and c.value.startswith("'=") for c in cells)


def test_caseload_formats_hold_the_memos_numbers(tmp_path):
    report = compute_caseload([TeamLoad("Familierådgivningen", 890, 23.92, 32)], as_of=NOW)
    for fmt in ("table", "csv", "html"):
        text = render(report, fmt)
        for number in ("890", "23,92", "37,2", "5,75", "11,68", "over anbefalingen"):
            assert number in text, (fmt, number)
    path = tmp_path / "c.xlsx"
    path.write_bytes(render(report, "xlsx"))
    ws = load_workbook(path)["Sagstal"]
    rows = [r for r in ws.iter_rows(values_only=True) if r[0] == "Familierådgivningen"]
    assert rows == [("Familierådgivningen", 890, 32, 23.92, 37.2, "over anbefalingen", 5.75, 11.68)]
    assert len(ws._charts) == 1


def test_an_unknown_format_is_a_users_mistake(report):
    with pytest.raises(ReportInputError, match="unknown format 'pdf'"):
        render(report, "pdf")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(page: Path, profile: Path, *, budget_ms: int) -> str:
    """The DOM of ``page`` after headless Chromium ran its scripts for ``budget_ms`` of virtual time."""
    out = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.browser
@pytest.mark.skipif(chromium() is None, reason="Debian's chromium package is not installed (.ci/run installs it)")
@pytest.mark.parametrize("kind", ["barometer", "caseload"])
def test_html_report_renders_in_headless_chromium_with_its_tables_and_charts(kind, report, tmp_path):
    if kind == "barometer":
        content, tables, charts = render(report, "html"), len(report.tables), 2 * len(report.tables)
    else:
        content = render(compute_caseload([TeamLoad("Nord", 890, 23.92, 32), TeamLoad("Syd", 100, 4.0, 4)],
                                          as_of=NOW), "html")
        tables, charts = 1, 1
    page = tmp_path / f"{kind}.html"
    page.write_text(content, encoding="utf-8")
    dom = dump_dom(page, tmp_path / "profile", budget_ms=2000)
    assert f'data-report="{kind}"' in dom
    assert re.search(r"<html[^>]*data-render-error", dom) is None, "the page reported a script error"
    assert f'data-charts-rendered="{charts}"' in dom  # every SVG chart was laid out with a size
    assert dom.count("<table") == tables and dom.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart') == charts
    if kind == "barometer":
        got, _ = html_numbers(dom[dom.index("<body"):])
        assert got == expected(report)
    else:
        assert "37,2" in dom and "11,68" in dom


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
_AXE_RUN = """
window.addEventListener('load', function () {
  axe.run(document).then(function (r) {
    document.body.setAttribute('data-axe', JSON.stringify(r.violations.map(function (v) {
      return {id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map(function (n) { return n.target.join(' '); })};
    })));
    document.body.setAttribute('data-axe-passes', String(r.passes.length));
  }).catch(function (e) { document.body.setAttribute('data-axe-error', String(e)); });
});
"""


def axe_violations(content: str, tmp_path: Path) -> tuple[list[dict], int]:
    """Run axe-core (vendored) on ``content`` in headless Chromium; its violations and passes."""
    import html as html_lib
    import json

    page = tmp_path / "axe.html"
    injected = f"<script>{AXE.read_text(encoding='utf-8')}</script><script>{_AXE_RUN}</script></body>"
    page.write_text(content.replace("</body>", injected, 1), encoding="utf-8")
    dom = dump_dom(page, tmp_path / "axe-profile", budget_ms=20000)
    error = re.search(r'data-axe-error="([^"]*)"', dom)
    assert error is None, html_lib.unescape(error.group(1))
    found = re.search(r'data-axe="([^"]*)"', dom)
    assert found is not None, "axe-core did not finish within the virtual time budget"
    passes = int(re.search(r'data-axe-passes="(\d+)"', dom).group(1))
    return json.loads(html_lib.unescape(found.group(1))), passes


@pytest.mark.browser
@pytest.mark.skipif(chromium() is None, reason="Debian's chromium package is not installed (.ci/run installs it)")
@pytest.mark.parametrize("kind", ["barometer", "barometer-running", "caseload"])
def test_the_html_reports_pass_axe_core_with_no_violations_in_headless_chromium(kind, report, session, tmp_path):
    if kind == "barometer":
        content = render(report, "html")
    elif kind == "barometer-running":  # a period still running: a provisional month, the national figures
        content = render(barometer_report(session, Period(date(2023, 1, 1), date(2024, 12, 31)),
                                          now=local("2024-11-10T12:00"), municipality="Ishøj Kommune"), "html")
        assert "foreløbig" in content and "Landsplan 2024: 50 %" in content
    else:
        content = render(compute_caseload([TeamLoad("Nord", 890, 23.92, 32), TeamLoad("Syd", 100, 4.0, 4)],
                                          as_of=NOW), "html")
    violations, passes = axe_violations(content, tmp_path)
    assert passes > 10  # axe really ran its rules
    assert violations == [], "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in violations)


@pytest.mark.browser
@pytest.mark.skipif(chromium() is None, reason="Debian's chromium package is not installed (.ci/run installs it)")
def test_the_axe_check_finds_a_violation_when_there_is_one(tmp_path):
    bad = '<!DOCTYPE html><html><head><title>x</title></head><body><img src="x.png"><p style="color:#eee">lys</p></body></html>'
    violations, _ = axe_violations(bad, tmp_path)
    assert {"image-alt", "html-has-lang", "color-contrast"} <= {v["id"] for v in violations}
