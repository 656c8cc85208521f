"""The page benchmark's code at a tiny scale, so it cannot rot (no timing assertions: speed is measured
by ``python -m benchmarks.pages``). Runs on the test database."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks import pages  # noqa: E402
from benchmarks.run import prepare_store  # noqa: E402


def test_page_benchmark_requests_every_page_and_times_it_against_its_query(engine, database_url):
    prepare_store(database_url, cases=200, seed=2, progress=lambda m: None)
    rows = pages.measure(database_url, repeat=1)
    assert [r["page"] for r in rows] == ["team page (leader)", "caseworker's list", "case page",
                                         "one-year barometer, one team", "one-year barometer, every case"]
    assert all(r["floor_s"] > 0 and r["page_s"] > 0 and r["bytes"] > 1000 for r in rows)
    text = pages.report("test", 200, rows)
    assert "× floor" in text and text.count("\n| ") == len(rows) + 1
