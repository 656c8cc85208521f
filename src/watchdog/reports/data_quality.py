"""The data-quality report: the implausible facts the imports found, each with file, row and field.

``data_quality_report`` reads ``data_quality_warning`` (I/O: the database); the renderers below
are pure and write the same rows as a terminal table, CSV (semicolons, Danish Excel) or XLSX.
Every warning kind is listed in the summary, also those with none, so an empty report says that
each was checked. Cases appear by reference only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from watchdog.clock import ensure_aware, format_local
from watchdog.intake.quality import KINDS, DataQualityWarning
from watchdog.reports import ReportInputError

FORMATS = ("table", "csv", "xlsx")
HEADER = ("Type", "Sag", "Fil", "Række", "Felt", "Post", "Besked", "Fundet", "Løst")
TITLE_DA = "Datakvalitet – forhold i sagsdata, der kan gøre en frist forkert"
INTRO_DA = ("Fakta, der er lovlige at gemme, men usandsynlige. watchdog beregner fristen ud fra det, "
            "sagssystemet siger; ret oplysningen i sagssystemet, så forsvinder advarslen ved næste import.")


@dataclass(frozen=True)
class WarningRow:
    kind: str
    title: str
    case_ref: str | None
    source: str
    record: str
    field: str
    entity: str
    record_ext_id: str
    message: str
    detected_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class DataQualityReport:
    municipality: str
    as_of: datetime
    rows: tuple[WarningRow, ...]
    counts: tuple[tuple[str, str, int], ...]  # (kind, Danish title, open warnings), every kind
    include_resolved: bool = False


def data_quality_report(session: Session, *, now: datetime, municipality: str = "Kommune",
                        include_resolved: bool = False, kind: str | None = None) -> DataQualityReport:
    """The stored warnings (open ones; with ``include_resolved`` also those fixed since)."""
    if kind is not None and kind not in KINDS:
        raise ReportInputError(f"unknown warning kind {kind!r} (known: {', '.join(KINDS)})")
    W = DataQualityWarning
    query = select(W).order_by(W.kind, W.case_ref, W.entity, W.record_ext_id, W.field)
    if not include_resolved:
        query = query.where(W.resolved_at.is_(None))
    if kind is not None:
        query = query.where(W.kind == kind)
    rows = tuple(
        WarningRow(w.kind, KINDS.get(w.kind, w.kind), w.case_ref, w.source, w.record, w.field, w.entity,
                   w.record_ext_id, w.message, w.detected_at, w.resolved_at)
        for w in session.exec(query))
    counts = tuple((k, title, sum(1 for r in rows if r.kind == k and r.resolved_at is None))
                   for k, title in KINDS.items())
    return DataQualityReport(municipality, ensure_aware(now, what="now"), rows, counts, include_resolved)


def _cells(row: WarningRow) -> list[str]:
    return [row.title, row.case_ref or "", row.source, row.record, row.field, f"{row.entity} {row.record_ext_id}",
            row.message, format_local(row.detected_at), format_local(row.resolved_at) if row.resolved_at else ""]


def _heading(report: DataQualityReport) -> str:
    return f"{TITLE_DA} – {report.municipality}, pr. {format_local(report.as_of)}"


def render_data_quality(report: DataQualityReport, fmt: str) -> str | bytes:
    if fmt not in FORMATS:
        raise ReportInputError(f"unknown format {fmt!r} for the data-quality report (use one of: {', '.join(FORMATS)})")
    return {"table": _table, "csv": _csv, "xlsx": _xlsx}[fmt](report)


def _table(report: DataQualityReport) -> str:
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    console.print(_heading(report), highlight=False, markup=False)
    console.print(INTRO_DA, highlight=False, markup=False)
    summary = Table(title="Advarsler pr. type", title_justify="left")
    summary.add_column("Type")
    summary.add_column("Kode")
    summary.add_column("Åbne", justify="right")
    for kind, title, n in report.counts:
        summary.add_row(title, kind, str(n))
    console.print(summary)
    if report.rows:
        table = Table(title="Advarsler", title_justify="left")
        for h in HEADER:
            table.add_column(h, overflow="fold")
        for row in report.rows:
            table.add_row(*_cells(row))
        console.print(table)
    else:
        console.print("Ingen advarsler.", highlight=False, markup=False)
    return out.getvalue()


def _csv(report: DataQualityReport) -> str:
    from watchdog.reports.output import safe_cell

    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(["Kode", *HEADER])
    for row in report.rows:
        w.writerow([safe_cell(c) for c in (row.kind, *_cells(row))])
    return out.getvalue()


def _xlsx(report: DataQualityReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from watchdog.reports.output import safe_cell

    wb = Workbook()
    ws = wb.active
    ws.title = "Datakvalitet"
    ws.append([safe_cell(_heading(report))])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([INTRO_DA])
    ws.append([])
    ws.append(["Kode", *HEADER])
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    for row in report.rows:
        ws.append([safe_cell(c) for c in (row.kind, *_cells(row))])
    for col, width in zip("ABCDEFGHIJ", (28, 40, 14, 30, 8, 18, 20, 80, 18, 18)):
        ws.column_dimensions[col].width = width
    summary = wb.create_sheet("Pr. type")
    summary.append(["Kode", "Type", "Åbne advarsler"])
    for kind, title, n in report.counts:
        summary.append([kind, title, n])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
