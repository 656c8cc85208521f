"""The sources benchmark's code at a tiny scale: the plain import, the drop folder and the SQL
source turn the same export into the same store (no timing here; see benchmarks/sources.py)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

from benchmarks import sources as bench
from sources_vendor import MARIADB_URL


def test_the_floor_the_drop_folder_and_the_sql_source_give_the_same_store(tmp_path):
    name = f"wd_sources_test_{os.getpid()}_bench"
    server = create_engine(MARIADB_URL + "/")
    with server.begin() as conn:
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4"))
    url = f"{MARIADB_URL}/{name}?charset=utf8mb4"
    try:
        total = bench.prepare(40, tmp_path, vendor_url=url, progress=lambda _msg: None)
        results = [bench.run_phase(phase, tmp_path, vendor_url=url) for phase in bench.PHASES]
    finally:
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()
    counts = results[0]["counts"]
    assert sum(counts.values()) == total and counts["cases"] == 40
    assert [r["counts"] for r in results] == [counts] * 3
    assert [r["rows"] for r in results] == [total] * 3
