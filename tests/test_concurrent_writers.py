"""Concurrent writers of the same new records wait for each other, never deadlock (issue 12,
point 6): two `watchdog import` processes, and two `watchdog serve` processes, on the same new
cases in opposite order. Every writer locks in one key order; a transaction that still loses a
race is run again, a bounded number of times; what still fails is the documented 409, never a
500 or exit 70.

2,000 cases (with a notification each) per writer: on this shared 2-core machine 10,000 took
2.5 minutes per pair of imports on PostgreSQL (both exited 0); 2,000 gave the deadlock reliably
before the change.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from process_helpers import cli, start, watchdog_env
from watchdog.casestore import Case, Notification
from watchdog.deadlines import Deadline

N = 2000
REFS = [f"S-{i:05d}" for i in range(N)]


def write_files(folder: Path, refs: list[str]) -> list[str]:
    folder.mkdir()
    (folder / "cases.csv").write_text(
        "ext_id;team;opened_at\n" + "".join(f"{r};T-1;01-03-2024 09:00\n" for r in refs), encoding="utf-8")
    (folder / "notifications.csv").write_text(
        "ext_id;case;received_at\n" + "".join(f"N-{r};{r};01-03-2024 09:00\n" for r in refs), encoding="utf-8")
    return [str(folder / "cases.csv"), str(folder / "notifications.csv")]


def counts(engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (s.execute(select(func.count()).select_from(Case)).scalar_one(),
                s.execute(select(func.count()).select_from(Notification)).scalar_one(),
                s.execute(select(func.count(func.distinct(Deadline.case_id)))).scalar_one())


@pytest.fixture
def team(tmp_path, engine, database_url):
    teams = tmp_path / "teams.csv"
    teams.write_text("ext_id;name\nT-1;Team 1\n", encoding="utf-8")
    out = cli("import", str(teams), cwd=tmp_path, env=watchdog_env(database_url))
    assert out.returncode == 0, out.stderr


def test_two_imports_of_the_same_new_cases_in_opposite_order_both_succeed(tmp_path, engine, database_url, team):
    env = watchdog_env(database_url)
    forward = write_files(tmp_path / "forward", REFS)
    backward = write_files(tmp_path / "backward", REFS[::-1])
    imports = [start("import", *files, cwd=tmp_path, env=env) for files in (forward, backward)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in imports]
    for code, _out, err in results:
        assert code == 0, err  # before: one of them exited 70 with DeadlockDetected
        assert "Traceback" not in err and "Deadlock" not in err
    assert counts(engine) == (N, N, N)  # stored once, every case with its deadlines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("watchdog serve did not start")


def post(port: int, entity: str, records: list[dict], token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/{entity}", data=json.dumps(records).encode(),
                                     method="POST", headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except ValueError:  # a 500's plain text
            return exc.code, {"detail": body.decode(errors="replace")}


def test_two_serve_processes_posting_the_same_new_cases_in_opposite_order_answer_200_or_409_never_500(
        tmp_path, engine, database_url, team):
    env = watchdog_env(database_url)
    made = cli("token", "create", "pusher", "--scope", "write", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    token = next(word for word in made.stdout.split() if word.startswith("wdt_"))
    ports = [free_port(), free_port()]
    servers = [start("serve", "--host", "127.0.0.1", "--port", str(p), cwd=tmp_path, env=env,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for port, server in zip(ports, servers):
            wait_until_serving(port, server)
        cases = [{"ext_id": r, "team": "T-1", "opened_at": "2024-03-01T09:00:00+01:00"} for r in REFS]
        notifications = [{"ext_id": f"N-{r}", "case": r, "received_at": "2024-03-01T09:00:00+01:00"} for r in REFS]
        answers: list[tuple[int, dict]] = []
        barrier = threading.Barrier(2)

        def push(port: int, order: int) -> None:
            barrier.wait()
            answers.append(post(port, "cases", cases[::order], token))
            answers.append(post(port, "notifications", notifications[::order], token))

        threads = [threading.Thread(target=push, args=(port, order)) for port, order in zip(ports, (1, -1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=900)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
    statuses = sorted(code for code, _body in answers)
    assert len(statuses) == 4 and set(statuses) <= {200, 409}, answers  # before: a 500
    for code, body in answers:
        if code == 409:
            assert "send it again" in body["detail"]
    # Whatever was refused with 409 was refused whole; what was accepted is stored once.
    stored_cases, stored_notifications, _ = counts(engine)
    assert stored_cases == N and stored_notifications == N
