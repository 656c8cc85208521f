"""Renderers: the barometer and caseload reports as a terminal table, CSV, XLSX or HTML. Pure.

Every format is written from the same dataclasses, so the numbers are the same in each. CSV and
XLSX cells that a spreadsheet would run as a formula (text starting with =, +, -, @, tab or
carriage return) are neutralised with a leading apostrophe: team names and case references come
from outside. The HTML is one self-contained file (inline CSS and SVG; a few lines of inline
script only mark rendering errors), so it opens offline; it is written through the shared
template environment (``watchdog.templating``, ``templates/reports/``). Ankestyrelsen's national
figure for the same question and year (``reports.national``) stands beside each table in the
terminal table, the XLSX and the HTML; the CSV holds the municipality's own numbers only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from watchdog.clock import format_due, format_local
from watchdog.reports import ReportInputError, charts
from watchdog.reports.barometer import I_ALT, BarometerReport, BarometerTable
from watchdog.reports.caseload import SOURCE_DA, SOURCE_URL, CaseloadReport, CaseloadRow
from watchdog.reports.national import CAUTION_DA

FORMATS = ("table", "csv", "xlsx", "html")
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell value a spreadsheet will show, never run: text starting like a formula gets a '."""
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def csv_text(header: Sequence, rows) -> str:
    """The one CSV dialect of the service (reports and `watchdog deadlines --format csv`): semicolons
    (Danish Excel's list separator, so a double-click opens it in columns), CRLF, every cell guarded
    against formulas. The byte-order mark is added where the text is written."""
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if c is None else safe_cell(c) for c in row])
    return out.getvalue()


def pct_text(percent: int | None) -> str:
    return "–" if percent is None else f"{percent} %"


def dec_text(value: Decimal | None) -> str:
    """Danish decimal comma: 37,2."""
    return "–" if value is None else str(value).replace(".", ",")


def render(report, fmt: str) -> str | bytes:
    """The report in ``fmt``: text for table/csv/html, bytes for xlsx."""
    if fmt not in FORMATS:
        raise ReportInputError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
    kind = "barometer" if isinstance(report, BarometerReport) else "caseload"
    return globals()[f"{kind}_{fmt}"](report)


# --------------------------------------------------------------------------------------------
# Barometer
# --------------------------------------------------------------------------------------------


def _heading(report: BarometerReport) -> str:
    team = f", {report.team}" if report.team else ""
    return (f"Børnesagsbarometer – {report.municipality}{team}: frister med forfald "
            f"{report.period.start:%d-%m-%Y} – {report.period.end:%d-%m-%Y}")


def _as_of_text(report: BarometerReport) -> str:
    if report.known_at is not None:
        return (f"Status pr. {format_due(report.as_of)} ifølge hændelsesloggen, som watchdog kendte den "
                f"{format_local(report.known_at)} (genskaber en rapport udskrevet på det tidspunkt).")
    return f"Status pr. {format_due(report.as_of)} ifølge hændelsesloggen."


def _national_text(t: BarometerTable) -> str:
    return "; ".join(f"{f.label} (Ankestyrelsen; kilde: {f.source.url})" for f in t.national) + "."


def _table_rows(t: BarometerTable) -> list[tuple[str, int, int | None]]:
    total_pct = 100 if t.total else None
    return [(r.answer, r.count, r.percent) for r in t.rows] + [(I_ALT, t.total, total_pct)]


def barometer_table(report: BarometerReport) -> str:
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=110, force_terminal=False, color_system=None)
    console.print(_heading(report), highlight=False, markup=False)
    console.print(_as_of_text(report), highlight=False, markup=False)
    for t in report.tables:
        table = Table(title=t.title, title_justify="left", show_lines=False)
        table.add_column("Svar")
        table.add_column("Antal sager", justify="right")
        table.add_column("Procent", justify="right")
        for answer, count, percent in _table_rows(t):
            table.add_row(answer, str(count), pct_text(percent), style="bold" if answer == I_ALT else None)
        console.print(table)
        console.print(f"Vedrører: {t.applies_to}. Hjemmel: {t.citation}.", highlight=False, markup=False)
        if t.national:
            console.print(_national_text(t), highlight=False, markup=False)
        console.print()
    if any(t.national for t in report.tables):
        console.print(CAUTION_DA, highlight=False, markup=False)
    for note in report.notes:
        console.print(note, highlight=False, markup=False)
    return out.getvalue()


def barometer_csv(report: BarometerReport) -> str:
    return csv_text(["Tabel", "Spørgsmål", "Hjemmel", "Svar", "Antal sager", "Procent"],
                    ((t.number, t.question, t.citation, answer, count, "" if percent is None else percent)
                     for t in report.tables for answer, count, percent in _table_rows(t)))


def barometer_xlsx(report: BarometerReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.chart import PieChart, Reference
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Barometer"
    ws.column_dimensions["A"].width = 58
    ws.column_dimensions["B"].width = 13
    ws.column_dimensions["C"].width = 10
    # Rows are placed explicitly: a chart floats over the sheet, so each table gets a block of
    # rows tall enough for its chart before the next one starts.
    def put(row: int, values: Sequence, *, bold: bool = False) -> None:
        for col, value in enumerate(values, start=1):
            cell = ws.cell(row, col, safe_cell(value))
            if bold:
                cell.font = Font(bold=True)

    put(1, [_heading(report)])
    ws["A1"].font = Font(bold=True, size=14)
    put(2, [_as_of_text(report)])
    row = 4
    for t in report.tables:
        start = row
        put(start, [t.title], bold=True)
        put(start + 1, [f"Hjemmel: {t.citation}. Vedrører: {t.applies_to}."
                        + (f" {_national_text(t)}" if t.national else "")])
        put(start + 2, ["Svar", "Antal sager", "Procent"], bold=True)
        first = row = start + 3
        for answer, count, percent in _table_rows(t):
            put(row, [answer, count, percent], bold=answer == I_ALT)
            ws.cell(row, 3).number_format = '0" %"'
            row += 1
        last_answer = row - 2  # the row before "I alt"
        chart = PieChart()
        chart.title = f"Tabel {t.number}"
        chart.add_data(Reference(ws, min_col=2, min_row=first - 1, max_row=last_answer), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=first, max_row=last_answer))
        chart.height, chart.width = 6.0, 9.0
        ws.add_chart(chart, f"E{start}")
        row = max(row, start + 13) + 1
    if any(t.national for t in report.tables):
        put(row, [CAUTION_DA])
        row += 1
    for note in report.notes:
        put(row, [note])
        row += 1

    trend = wb.create_sheet("Udvikling")
    trend.append(["Tabel", "Måned", "Sager", "Ja", "Procent Ja", "Foreløbig"])
    for t in report.tables:
        for p in t.trend:
            trend.append([t.number, p.month, p.total, p.ja, p.percent, "ja" if p.partial else ""])
            trend.cell(trend.max_row, 5).number_format = '0" %"'
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _html(template: str, **context) -> str:
    from watchdog.templating import render as render_template

    return render_template(f"reports/{template}", **context)


def barometer_html(report: BarometerReport) -> str:
    from markupsafe import Markup

    tables = []
    for t in report.tables:
        prefix = f"p{t.number}"
        answers = [r.answer for r in t.rows]
        rows = [dict(answer=a, count=c, percent=pct_text(p), total=a == I_ALT,
                     swatch=Markup(charts.swatch(a, i, prefix=f"s{t.number}r")) if a != I_ALT else "")
                for i, (a, c, p) in enumerate(_table_rows(t))]
        legend = [dict(answer=r.answer, count=r.count, percent=pct_text(r.percent),
                       pattern=charts.PATTERN_NAMES_DA[charts.pattern(r.answer, i)],
                       swatch=Markup(charts.swatch(r.answer, i, prefix=f"s{t.number}l")))
                  for i, r in enumerate(t.rows)]
        tables.append(dict(
            key=t.key, number=t.number, title=t.title, total=t.total, rows=rows, legend=legend,
            pie=Markup(charts.pie([(a, r.count) for a, r in zip(answers, t.rows)],
                                  title=f"Tabel {t.number}: fordeling af svar", chart_id=prefix)),
            trend=Markup(charts.trend(t.trend, title=f"Tabel {t.number}: andel Ja pr. måned")),
            has_partial=any(p.partial and p.total for p in t.trend),
            citation=t.citation, applies_to=t.applies_to, ast_table=t.ast_table, national=t.national))
    warnings, notes = report.notes[:-1], report.notes[-1:]
    return _html("barometer.html", kind="barometer", title=_heading(report), heading=_heading(report),
                 as_of_text=_as_of_text(report), tables=tables, warnings=warnings, notes=notes,
                 caution=CAUTION_DA)


# --------------------------------------------------------------------------------------------
# Caseload
# --------------------------------------------------------------------------------------------

def _caseload_header(report: CaseloadReport) -> list[str]:
    return ["Team", "Aktive sager", "Rådgivere", "Årsværk", "Sager pr. årsværk", "Vurdering"] + [
        f"Ekstra årsværk til {t} sager" for t in report.targets]


def _caseload_rows(report: CaseloadReport) -> list[CaseloadRow]:
    return [*report.rows, report.total]


def _caseload_title(report: CaseloadReport) -> str:
    return f"Sagstal – {report.municipality}, aktive sager pr. {format_due(report.as_of)}"


def _caseload_text_row(row: CaseloadRow, report: CaseloadReport) -> list[str]:
    return [row.team, str(row.cases), str(row.caseworkers), dec_text(row.fte), dec_text(row.per_fte),
            row.verdict] + [dec_text(row.extra_fte[t]) for t in report.targets]


def caseload_table(report: CaseloadReport) -> str:
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=180, force_terminal=False, color_system=None)
    table = Table(title=_caseload_title(report), title_justify="left")
    for i, h in enumerate(_caseload_header(report)):
        table.add_column(h, justify="left" if i in (0, 5) else "right", no_wrap=i in (0, 5))
    for row in _caseload_rows(report):
        table.add_row(*_caseload_text_row(row, report), style="bold" if row is report.total else None)
    console.print(table)
    console.print(SOURCE_DA, highlight=False, markup=False)
    return out.getvalue()


def caseload_csv(report: CaseloadReport) -> str:
    return csv_text(_caseload_header(report),
                    (_caseload_text_row(row, report) for row in _caseload_rows(report)))


def caseload_xlsx(report: CaseloadReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Sagstal"
    ws.append([safe_cell(_caseload_title(report))])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([safe_cell(SOURCE_DA)])
    ws.append(_caseload_header(report))
    header_row = ws.max_row
    for row in _caseload_rows(report):
        ws.append([safe_cell(row.team), row.cases, row.caseworkers, float(row.fte),
                   float(row.per_fte) if row.per_fte is not None else None, row.verdict,
                   *(float(row.extra_fte[t]) for t in report.targets)])
        r = ws.max_row
        ws.cell(r, 4).number_format = "0.00"
        ws.cell(r, 5).number_format = "0.0"
        for c in range(7, 7 + len(report.targets)):
            ws.cell(r, c).number_format = "0.00"
    ws.column_dimensions["A"].width = 28
    chart = BarChart()
    chart.title = "Sager pr. årsværk (anbefalet 20-30)"
    chart.add_data(Reference(ws, min_col=5, min_row=header_row, max_row=ws.max_row), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=header_row + 1, max_row=ws.max_row))
    ws.add_chart(chart, f"A{ws.max_row + 3}")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def caseload_html(report: CaseloadReport) -> str:
    from markupsafe import Markup

    rows = [dict(total=row is report.total, cells=_caseload_text_row(row, report)) for row in _caseload_rows(report)]
    peak = max([float(r.per_fte or 0) for r in _caseload_rows(report)] + [35.0])
    chart = charts.bars([(r.team, float(r.per_fte) if r.per_fte is not None else None, f"{r.cases} sager")
                         for r in _caseload_rows(report)],
                        title="Sager pr. årsværk", maximum=peak * 1.1,
                        guides=[(report.recommended[0], str(report.recommended[0])),
                                (report.recommended[1], str(report.recommended[1]))])
    return _html("caseload.html", kind="caseload", title=_caseload_title(report),
                 header=_caseload_header(report), rows=rows, chart=Markup(chart), source=SOURCE_DA,
                 source_url=SOURCE_URL)
