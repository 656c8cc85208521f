"""Dependencies a packager can trust (issue 13 point 8): pins that say what is used, a constraints
file that CI and the image install from, the Danish holiday data the rules rely on, and a suite
that prints no warning the project could remove."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from datetime import date
from importlib.metadata import version
from pathlib import Path

import holidays
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
TEST = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]


def requirement(name: str, among: list[Requirement]) -> Requirement | None:
    return next((r for r in among if canonicalize_name(r.name) == canonicalize_name(name)), None)


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name.split("[")[0])] = pinned.strip()
    return pins


def test_python_dateutil_is_a_test_dependency_because_no_runtime_code_imports_it():
    assert requirement("python-dateutil", RUNTIME) is None
    assert requirement("python-dateutil", TEST) is not None
    for path in (ROOT / "src" / "watchdog").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "dateutil" for n in names), f"{path} imports dateutil"


def test_schemathesis_is_pinned_to_the_v4_api_the_tests_use():
    pin = requirement("schemathesis", TEST)
    assert pin is not None and not pin.specifier.contains("3.39") and pin.specifier.contains("4.0")
    assert not pin.specifier.contains("5.0")
    assert version("schemathesis").split(".")[0] == "4"


def test_holidays_has_a_bounded_range_and_gives_the_danish_calendar_the_rules_expect():
    pin = requirement("holidays", RUNTIME)
    assert pin is not None and any(s.operator == "<" for s in pin.specifier)
    assert pin.specifier.contains(version("holidays"))

    def helligdage(year: int) -> list[date]:
        return sorted(holidays.country_holidays("DK", years=year))

    # Store Bededag was abolished from 2024; Grundlovsdag, 24 and 31 December are not helligdage.
    assert date(2023, 5, 5) in helligdage(2023) and date(2024, 4, 26) not in helligdage(2024)
    assert [d.isoformat() for d in helligdage(2026)] == [
        "2026-01-01", "2026-04-02", "2026-04-03", "2026-04-05", "2026-04-06", "2026-05-14", "2026-05-24",
        "2026-05-25", "2026-12-25", "2026-12-26"]
    assert all(date(y, 6, 5) not in helligdage(y) and date(y, 12, 24) not in helligdage(y)
               for y in range(2023, 2028))


def test_aiosmtpd_stays_a_runtime_dependency_with_its_reason_written_down():
    assert requirement("aiosmtpd", RUNTIME) is not None
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "Only watchdog.mailsink uses it" in text


def test_the_constraints_file_pins_every_dependency_within_what_pyproject_allows():
    pins = constraints()
    for req in RUNTIME + TEST:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is missing from constraints.txt: run ./dev lock"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert "frist-watchdog" not in pins


def test_ci_and_the_image_install_the_constrained_versions_and_dev_documents_the_refresh():
    dev = (ROOT / "dev").read_text(encoding="utf-8")
    assert "pip install --quiet -c constraints.txt -e \".[test]\"" in dev
    assert "./dev lock" in dev and "lock)" not in dev.split("case \"$cmd\"")[1]  # lock is handled first
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "export WATCHDOG_CI_CONSTRAINTS=strict" in ci and "./dev test" in ci
    docker = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"COPY [^\n]*constraints\.txt", docker)
    assert "pip install -c constraints.txt ." in docker
    assert "./dev lock" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_tests_that_met_library_warnings_print_none():
    # Apprise's imghdr import (delivery), urllib3's unverified HTTPS (the test Teams receiver) and
    # Starlette's TestClient: each is filtered by name in pyproject.toml, so any other stands out.
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "teams or workflow or fastapi",
         "tests/test_delivery.py", "tests/test_ops.py"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "warnings summary" not in out.stdout and " warning" not in out.stdout.splitlines()[-1], out.stdout[-3000:]
