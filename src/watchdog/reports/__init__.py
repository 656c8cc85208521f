"""Stage 7, reports: the barometer tables, the caseload report and the leaders' weekly digest.

Each report is split the same way: a loader reads rows from the case store, the ``deadline``
table and the append-only ``outcome_event`` log (I/O); a pure ``compute_…`` turns the rows into
plain dataclasses; renderers (``watchdog.reports.output``) write those dataclasses as a terminal
table, CSV, XLSX or self-contained HTML, so every format shows the same numbers.
"""

from __future__ import annotations

from watchdog.errors import WatchdogError


class ReportInputError(WatchdogError):
    """A report was asked for something that cannot be reported (unknown team, bad period)."""
