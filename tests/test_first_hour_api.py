"""The HTTP API as the real `watchdog serve` process answers it (issue 13 point 5, issue 16 point 7).

A subprocess on a free port, with a fresh SQLite database: one error shape for every error (404 and
405 included), read errors that do not claim "nothing was stored", due_from/due_to as the CLI takes
them, /openapi.json and /docs (with their assets from the package, nothing from a CDN), and the
README's API example run as printed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `watchdog serve` on a fresh database; yields (base URL, read+write token)."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = clean_env(WATCHDOG_DATABASE_URL=f"sqlite:///{folder / 'wd.db'}", WATCHDOG_HTTP__PORT=str(port))
    assert cli(env, "db", "upgrade").returncode == 0
    token = cli(env, "token", "create", "test", "--scope", "read", "--scope", "write").stdout.strip()
    proc = subprocess.Popen([sys.executable, "-m", "watchdog", "serve"], env=env, cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("watchdog serve did not start: " + (proc.stderr.read() if proc.poll() else ""))
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def assert_error_shape(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "reason", "problems"}, body
    return body


def test_openapi_json_answers_200_from_the_real_process(server):
    base, _ = server
    response = httpx.get(f"{base}/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    assert {"/v1/cases", "/v1/deadlines", "/healthz", "/readyz", "/metrics"} <= set(paths)


def test_docs_and_redoc_load_every_file_from_the_package_and_nothing_from_outside(server):
    base, _ = server
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{base}{page}").text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert urls and all(u.startswith("/docs-assets/") for u in urls), urls
        assert "cdn." not in html and "googleapis" not in html and "https://" not in html.replace(
            "https://swagger.io", "")
        for url in urls:
            asset = httpx.get(f"{base}{url}")
            assert asset.status_code == 200 and len(asset.content) > 500, url
    assert "SwaggerUIBundle" in httpx.get(f"{base}/docs-assets/swagger-ui-bundle.js").text


def test_an_unknown_path_and_a_wrong_method_get_the_one_error_shape(server):
    base, token = server
    body = assert_error_shape(httpx.post(f"{base}/v1/sager", json=[]), 404)
    assert body == {"detail": "no such endpoint: POST /v1/sager (see /docs)", "reason": "not_found", "problems": []}
    body = assert_error_shape(httpx.get(f"{base}/v1/cases", headers={"Authorization": f"Bearer {token}"}), 405)
    assert body["reason"] == "method_not_allowed" and body["detail"] == "GET is not allowed on /v1/cases; use POST"
    assert assert_error_shape(httpx.get(f"{base}/v1/deadlines"), 401)["reason"] == "missing"
    refused = assert_error_shape(httpx.post(f"{base}/v1/cases", json=[{"ext_id": "S-1"}],
                                            headers={"Authorization": f"Bearer {token}"}), 422)
    assert refused["detail"].endswith("nothing was stored")


def test_a_refused_read_names_the_parameter_and_does_not_claim_nothing_was_stored(server):
    base, token = server
    auth = {"Authorization": f"Bearer {token}"}
    body = assert_error_shape(httpx.get(f"{base}/v1/deadlines?limit=0", headers=auth), 422)
    assert body["detail"] == "1 problem(s) in the request" and body["problems"][0]["field"] == "limit"
    body = assert_error_shape(httpx.get(f"{base}/v1/deadlines?due_from=4+maj", headers=auth), 422)
    assert "nothing was stored" not in body["detail"]
    assert body["problems"][0]["field"] == "due_from" and "dd-mm-yyyy" in body["problems"][0]["reason"]


def test_due_from_and_due_to_take_a_date_and_a_local_time_as_the_cli_does(server):
    base, token = server
    auth = {"Authorization": f"Bearer {token}"}
    for entity, records in (
        ("teams", [{"ext_id": "T-X", "name": "X"}]),
        ("cases", [{"ext_id": "S-X", "team": "T-X", "opened_at": "2024-05-02T10:00:00+02:00"}]),
        ("notifications", [{"ext_id": "U-X", "case": "S-X", "received_at": "2024-05-02T10:00:00+02:00",
                            "professional_notifier": True}]),
    ):
        assert httpx.post(f"{base}/v1/{entity}", json=records, headers=auth).status_code == 200

    def duties(query: str) -> list[str]:
        response = httpx.get(f"{base}/v1/deadlines?{query}", headers=auth)
        assert response.status_code == 200, response.text
        return [d["duty"] for d in response.json() if d["case_ref"] == "S-X"]

    # The receipt confirmation is due at the end of 13 May 2024 (6 hverdage, Kristi himmelfart skipped).
    assert duties("due_from=2024-05-13T00:00:00%2B02:00&due_to=2024-05-14T00:00:00%2B02:00") == ["receipt_confirmation"]
    assert duties("due_from=13-05-2024&due_to=13-05-2024") == ["receipt_confirmation"]
    assert duties("due_from=03-05-2024+09:00&due_to=03-05-2024+11:00") == ["assessment_24h"]
    assert duties("due_from=2024-05-03T09:00&due_to=2024-05-03T11:00") == ["assessment_24h"]
    assert duties("due_to=12-05-2024") == ["assessment_24h"]


def readme_example() -> tuple[str, list[str]]:
    """The README's API example: the shell block and the outputs it prints after each curl."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("On a fresh database, as printed")
    block = readme[readme.index("```sh\n", start) + 6: readme.index("```", readme.index("```sh\n", start) + 6)]
    expected = [line[2:] for line in block.splitlines() if line.startswith("# {") or line.startswith("# [")]
    return block, expected


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README example uses curl")
def test_the_readme_api_example_works_as_printed_on_a_fresh_database(tmp_path):
    block, expected = readme_example()
    port = free_port()
    script = block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    env = clean_env(WATCHDOG_DATABASE_URL=f"sqlite:///{tmp_path / 'wd.db'}", WATCHDOG_HTTP__PORT=str(port))
    out = subprocess.run(["bash", "-e", "-c", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n", 2)
    assert lines[0] == f"created the database file {tmp_path / 'wd.db'}" and "upgraded from empty" in lines[1]
    rest = lines[2]
    assert len(expected) == 5
    for printed in expected:
        if printed.endswith("…"):
            assert rest.startswith(printed[:-1]), (printed, rest[:300])
            rest = ""
        else:
            assert rest.startswith(printed), (printed, rest[:300])
            rest = rest[len(printed):]
    assert rest == ""
