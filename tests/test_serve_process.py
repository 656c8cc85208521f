"""Issue 12 point 8 on the real `watchdog serve` process (where a hole could hide in how the app and
uvicorn are built): the token is checked before the body, an idle connection is closed, a stalled
body gets 408; and `watchdog check-config` masks a heartbeat URL's token."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from fixtures_servers import free_port
from test_cli import run_cli
from watchdog.intake.tokens import create_token

from conftest import at


@pytest.fixture
def served(engine, database_url, tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """`watchdog serve` as its own process on the test database, and a write and a read token."""
    with Session(engine) as s:
        tokens = {"write": create_token(s, name="case system", scopes={"write", "read"}, now=at("2024-12-02T10:00")).token,
                  "read": create_token(s, name="dashboard", scopes={"read"}, now=at("2024-12-02T10:00")).token}
        s.commit()
    config = tmp_path / "watchdog.toml"
    config.write_text("[intake]\nmax_request_bytes = 2048\n[http]\nkeep_alive_seconds = 1\n"
                      "body_timeout_seconds = 1\n", encoding="utf-8")
    port = free_port()
    env = {**os.environ, "WATCHDOG_DATABASE_URL": database_url}
    env.pop("WATCHDOG_DEBUG", None)
    process = subprocess.Popen([sys.executable, "-m", "watchdog", "--config", str(config), "serve",
                                "--port", str(port)], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # waiting for a real process to listen, not controlling time
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"watchdog serve did not start: {process.stderr.read().decode()}")
        time.sleep(0.1)
    try:
        yield url, tokens
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_an_unauthenticated_client_gets_401_before_its_body_is_parsed_or_measured(served):
    url, tokens = served
    with httpx.Client(base_url=url, timeout=10) as c:
        not_json = c.post("/v1/cases", content=b"{not json", headers={"content-type": "application/json"})
        invalid = c.post("/v1/cases", json=[{"ext_id": "S-1"}])
        too_large = c.post("/v1/cases", json=[{"ext_id": "x" * 5000}])
        reading = c.get("/v1/deadlines", params={"limit": "not a number"})
        read_only = c.post("/v1/cases", content=b"{not json", headers={
            "content-type": "application/json", "Authorization": f"Bearer {tokens['read']}"})
        authorised = c.post("/v1/cases", content=b"{not json", headers={
            "content-type": "application/json", "Authorization": f"Bearer {tokens['write']}"})
    assert [r.status_code for r in (not_json, invalid, too_large, reading)] == [401, 401, 401, 401]
    assert not_json.json()["reason"] == "missing"
    assert read_only.status_code == 403
    assert authorised.status_code == 422  # with the right token, the body's problems are named


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def test_a_request_body_that_stalls_gets_408_and_the_connection_is_freed(served):
    url, tokens = served
    sock = _raw(url)
    with sock:
        sock.sendall(b"POST /v1/teams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\nAuthorization: Bearer " + tokens["write"].encode() + b"\r\n\r\n[{\"ext")
        answer = sock.recv(4096)  # the server answers on its own after body_timeout_seconds
        while b"body_timeout_seconds" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body_timeout_seconds" in answer


def test_an_idle_kept_alive_connection_is_closed_by_the_server(served):
    url, _tokens = served
    sock = _raw(url)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        rest = b""
        while chunk := sock.recv(4096):  # b"" once the server closes: keep_alive_seconds later
            rest += chunk
        assert time.monotonic() - started < 10


def test_check_config_masks_the_token_of_the_heartbeat_url(tmp_path):
    env = {"WATCHDOG_HTTP__HEARTBEAT_URL": "https://hc.example.dk/ping/abc?token=s3cr3t-value&x=1"}
    text = run_cli("check-config", cwd=tmp_path, env=env)
    as_json = run_cli("check-config", "--json", cwd=tmp_path, env=env)
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr
    for out in (text.stdout, as_json.stdout):
        assert "s3cr3t-value" not in out
    assert json.loads(as_json.stdout)["http"]["heartbeat_url"] == "https://hc.example.dk/ping/abc?token=********&x=1"
