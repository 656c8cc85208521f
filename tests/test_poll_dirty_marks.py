"""No committed import can be skipped (issue 12, point 2): the poll goes by dirty marks set in the
same transaction as the facts, not by a time watermark. Real processes on SQLite and PostgreSQL.

The scenario: a big import takes its instant, then (while it validates, or on PostgreSQL while its
transaction is open with the facts written) another case is imported and a tick polls it — a
watermark would now be past the big import's instant. The big import commits, and dies in its own
recompute. The next tick must compute every case of it.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from process_helpers import cli, start, watchdog_env
from watchdog.casestore import Case
from watchdog.db import is_sqlite
from watchdog.deadlines import Deadline

BIG = 620  # more than one recompute batch (500): the import dies after the first
HELPER = textwrap.dedent('''
    """A `watchdog import` of FILES that waits for GO before it writes (SQLite) or before it
    commits (PostgreSQL), then SIGKILLs itself in its own recompute, after the first batch."""
    import os, signal, sys, time
    from pathlib import Path

    from watchdog import recompute
    from watchdog.clock import utcnow
    from watchdog.db import make_engine
    from watchdog.intake import upsert
    from watchdog.intake.parsing import read_files
    from watchdog.settings import load_settings

    url, mode, ready, go, *files = sys.argv[1:]
    now = utcnow()  # the import's instant: taken first, as `watchdog import` does

    def wait_for_go():
        Path(ready).touch()
        while not Path(go).exists():
            time.sleep(0.05)

    real_upsert, real_batch = upsert.upsert_records, recompute._refresh_batch
    def upsert_then_wait(*args, **kwargs):
        if mode == "before-write":
            wait_for_go()
        result = real_upsert(*args, **kwargs)
        if mode == "before-commit":
            wait_for_go()
        return result
    batches = []
    def batch_then_die(*args, **kwargs):
        result = real_batch(*args, **kwargs)
        batches.append(1)
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of its own recompute
    upsert.upsert_records, recompute._refresh_batch = upsert_then_wait, batch_then_die
    records, problems = read_files([Path(f) for f in files])
    assert not problems, problems
    upsert.import_records(make_engine(url), records, now=now, settings=load_settings())
    sys.exit("not killed")
''')


def write_cases(folder: Path, refs: list[str]) -> list[Path]:
    """Cases of a team with nobody to alert (no worker, no duty address): the poll computes
    their deadlines, and there is no mail to deliver."""
    folder.mkdir()
    cases = folder / "cases.csv"
    cases.write_text("ext_id;team;opened_at\n" + "".join(f"{r};T-LOAD;01-03-2024 09:00\n" for r in refs),
                     encoding="utf-8")
    notifications = folder / "notifications.csv"
    notifications.write_text("ext_id;case;received_at\n"
                             + "".join(f"N-{r};{r};01-03-2024 09:00\n" for r in refs), encoding="utf-8")
    return [cases, notifications]


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, f"{path.name} did not appear"
        time.sleep(0.05)


def cases_with_deadlines(engine) -> int:
    with Session(engine) as s:
        return s.execute(select(func.count(func.distinct(Deadline.case_id)))).scalar_one()


def test_an_import_that_commits_after_a_later_poll_and_dies_in_its_recompute_is_computed_by_the_next_tick(
        tmp_path, engine, database_url):
    env = watchdog_env(database_url)
    teams = tmp_path / "teams.csv"
    teams.write_text("ext_id;name\nT-LOAD;Team uden modtagere\n", encoding="utf-8")
    assert cli("import", str(teams), cwd=tmp_path, env=env).returncode == 0
    big = write_cases(tmp_path / "big", [f"S-BIG-{i:05d}" for i in range(BIG)])
    small = write_cases(tmp_path / "small", ["S-SMALL-1"])
    helper = tmp_path / "slow_import.py"
    helper.write_text(HELPER, encoding="utf-8")
    ready, go = tmp_path / "ready", tmp_path / "go"
    # SQLite has one writer: the big import waits before writing (it is still validating).
    # PostgreSQL: its transaction is open with every fact written, not yet committed.
    mode = "before-write" if is_sqlite(database_url) else "before-commit"
    slow = start(database_url, mode, str(ready), str(go), *map(str, big), script=helper, cwd=tmp_path, env=env)
    try:
        wait_for(ready, slow)
        other = cli("import", *map(str, small), cwd=tmp_path, env=env)
        assert other.returncode == 0, other.stderr
        first = cli("tick", cwd=tmp_path, env=env)  # a watermark would now be past the big import
        assert first.returncode == 0, first.stderr
        go.touch()
        _out, err = slow.communicate(timeout=300)
        assert slow.returncode == -9, err  # committed, then killed in its own recompute
    finally:
        if slow.poll() is None:
            slow.kill()
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == BIG + 1  # committed
    assert cases_with_deadlines(engine) == 1  # only the small case: the recompute died unfinished

    later = cli("tick", cwd=tmp_path, env=env)
    assert later.returncode == 0, later.stderr
    assert cases_with_deadlines(engine) == BIG + 1
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Case).where(Case.dirty == True)).scalar_one() == 0  # noqa: E712
    idle = cli("tick", cwd=tmp_path, env=env)
    assert idle.returncode == 0 and "poll: 0 cases recomputed" in idle.stderr + idle.stdout
