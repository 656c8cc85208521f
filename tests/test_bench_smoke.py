"""The national benchmark's code at a tiny scale, so it cannot rot. No timing assertions: speed is
measured by ``python -m benchmarks.run``, not by tests. Runs on the test database (SQLite, or
PostgreSQL when WATCHDOG_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks import run as bench  # noqa: E402
from benchmarks.generate import populate  # noqa: E402
from watchdog.casestore import Case, Notification  # noqa: E402
from watchdog.deadlines import Deadline  # noqa: E402


def test_generator_writes_a_realistic_mix_with_about_five_duties_per_case(engine):
    rows = populate(engine, seed=3, now=bench.GENERATED_AT, cases=300)
    assert rows["case_file"] == 300 and rows["team"] == 2 and rows["worker"] == 35
    assert rows["notification"] > 300 and 0 < rows["investigation"] < 300 and rows["follow_up"] > 0
    with Session(engine) as session:
        closed = session.execute(select(func.count()).where(Case.closed_at.is_not(None))).scalar_one()
        assessed = session.execute(select(func.count()).where(Notification.assessed_at.is_not(None))).scalar_one()
    assert 0 < closed < 150
    assert rows["notification"] * 0.8 < assessed < rows["notification"]


def test_same_seed_generates_the_same_store(engine):
    first = [r for batch in bench_rows(5) for r in batch["measure"]]
    second = [r for batch in bench_rows(5) for r in batch["measure"]]
    assert first == second and first


def bench_rows(seed: int):
    from benchmarks.generate import _rows

    return _rows(seed, bench.GENERATED_AT, 200)


def test_benchmark_runs_every_phase_and_computes_ratios_to_the_floor(engine, database_url):
    result = bench.run("test", cases=300, seed=1, in_process=True, url=database_url, progress=lambda m: None)

    assert set(result.phases) == set(bench.PHASES)
    first = result.store["first_stats"]
    assert first["cases_recomputed"] == 300 and first["deadlines_written"] > 3 * 300
    # The store is made by the service's own poll: its due alerts are in the outbox.
    assert first["alerts_planned"] > 0 and first["alerts_enqueued"] > 0
    with Session(engine) as session:
        deadlines = session.execute(select(func.count()).select_from(Deadline)).scalar_one()
    assert result.phases["floor"]["detail"]["deadline_rows"] == first["deadlines_written"]
    assert deadlines >= first["deadlines_written"]
    assert result.phases["recompute"]["detail"]["cases_recomputed"] == 300
    # Incremental: a poll after nothing changed recomputes nothing, and after 1 % changed only those.
    assert result.phases["poll_idle"]["detail"]["cases_recomputed"] == 0
    changed = result.phases["poll_changed"]["detail"]
    assert changed["cases_changed"] == 3 and 3 <= changed["cases_recomputed"] < 30
    assert result.phases["planning"]["detail"]["deadlines_considered"] > 0
    # Delivery: every message of the round reached the local SMTP sink, and the floor was measured.
    delivered = result.phases["delivery"]["detail"]
    assert delivered["messages"] > 0 and delivered["failed"] == 0 and delivered["dead"] == 0
    assert delivered["alerts_sent"] >= delivered["messages"] and delivered["floor_messages_per_s"] > 0
    for name in bench.PHASES:
        assert result.ratio(name) > 0 and result.phases[name]["rss_mb"] > 0
    text = bench.report([result])
    assert "recompute, no rule changed" in text and "≤ 3× floor" in text
    assert "delivery round to a local SMTP server" in text
    # A rule change rewrites every row; the plain recompute writes none.
    assert result.phases["recompute"]["detail"]["deadlines_written"] == 0
    assert result.phases["rule_change"]["detail"]["deadlines_written"] == \
        result.phases["rule_change_floor"]["detail"]["deadline_rows"] > 0
    assert result.phases["planning"]["detail"]["alerts_enqueued"] >= 0
    # Go-live, measured in this run: every deadline computed again from the facts alone, then the
    # first poll planned and enqueued their alerts.
    again = result.phases["first"]["detail"]
    assert again["cases_recomputed"] == 300 and again["deadlines_written"] == first["deadlines_written"]
    assert again["first_poll"]["alerts_enqueued"] > 0
    assert result.phases["first_floor"]["detail"]["deadline"] == first["deadlines_written"]
    # Intake: the real `watchdog import` took the store's whole export, and `watchdog serve` the cases.
    imported = result.phases["import"]["detail"]
    assert imported["files"]["cases"] == 300 and imported["records"] == sum(imported["files"].values())
    assert imported["floor_records_per_s"] > 0 and imported["import_peak_rss_mb"] > 0
    ingested = result.phases["ingest"]["detail"]
    assert ingested["records"] == 300 and ingested["batches"] == 1 and ingested["floor_p50_ms"] > 0
    assert set(result.verdicts()) == {"recompute", "poll_changed", "poll_idle", "delivery", "rule_change",
                                      "first", "import", "ingest", "rss"}


def test_the_floor_reads_the_same_typed_values_as_the_product_through_the_raw_driver(engine):
    populate(engine, seed=2, now=bench.GENERATED_AT, cases=60)
    with engine.connect() as conn:
        for query in bench.floor_queries()[:-1]:  # the fact tables (no deadlines computed here)
            through_sqlalchemy = [tuple(r) for r in conn.execute(query)]
            raw = list(bench.raw_rows(engine, query))
            assert len(raw) == len(through_sqlalchemy) > 0
            for mine, theirs in zip(raw, through_sqlalchemy):
                # Enums come back as their stored names from the raw driver; every other value,
                # datetimes (aware, UTC) and dates included, is the same.
                assert [a for a, b in zip(mine, theirs) if not hasattr(b, "value")] == \
                       [b for b in theirs if not hasattr(b, "value")]


def test_the_noise_benchmark_runs_a_small_municipality_and_meets_its_targets(tmp_path):
    from benchmarks import noise

    result = noise.run(seed=3, weeks=1, start=noise.date(2026, 10, 5), cases=60, out=tmp_path / "noise",
                       progress=lambda message: None)
    assert result["working_days"] == 5 and result["days"] == 7
    assert result["caseworker"]["messages"] > 0
    assert result["max_lines"] <= noise.MAX_LINES
    assert all(result["targets"].values()), result["targets"]
    assert "| messages per working day, median |" in noise.markdown(result)


def test_page_benchmark_requests_every_page_and_times_it_beside_its_floor(engine, database_url):
    from benchmarks import pages
    from benchmarks.store import poll_once, settings_for

    populate(engine, seed=2, now=bench.GENERATED_AT, cases=300)
    poll_once(engine, settings_for(database_url), bench.GENERATED_AT)
    rows = pages.measure(database_url, repeat=2)  # every page answers 200 (measure asserts it)

    assert [r["page"] for r in rows] == ["team page (leader)", "caseworker's list", "case page",
                                        "one-year barometer, one team", "one-year barometer, every case"]
    for r in rows:
        # Server time is inside the time through the client; each page showed something.
        assert 0 < r["page_s"] <= r["through_client_s"] and r["floor_s"] > 0 and r["bytes"] > 2000
        assert r["ratio"] == r["page_s"] / r["floor_s"]
    assert "| case page |" in pages.report("sqlite", 300, rows)
