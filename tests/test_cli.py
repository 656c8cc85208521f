"""The CLI: every command has help and stands in the README; mistakes give one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from watchdog.cli import _load_commands, app

ROOT = Path(__file__).resolve().parents[1]


def all_commands() -> list[tuple[str, object]]:
    _load_commands()
    root = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(prefix: str, cmd) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, cmd))

    walk("", root)
    return found


def test_every_command_has_help_and_appears_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = all_commands()
    assert len(commands) >= 3
    for name, cmd in commands:
        assert (cmd.help or "").strip(), f"`watchdog {name}` has no help text"
        assert f"watchdog {name}" in readme, f"`watchdog {name}` is missing from README.md"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("WATCHDOG_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=120)


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and "frist-watchdog" in out.stdout
    out = run_cli("--help")
    assert out.returncode == 0 and "check-config" in out.stdout


def test_check_config_refuses_a_broken_configuration_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[delivery]\nops_urls = ["msteams://a/b"]\n')
    out = run_cli("--config", str(bad), "check-config", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr


def test_check_config_masks_secrets(tmp_path):
    out = run_cli("check-config", cwd=tmp_path,
                  env={"WATCHDOG_DATABASE_URL": "postgresql+psycopg://wd:hunter2@db.example/wd",
                       "WATCHDOG_SMTP__PASSWORD": "hunter3", "WATCHDOG_SMTP__MODE": "starttls",
                       "WATCHDOG_SMTP__HOST": "smtp.example"})
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout and "hunter3" not in out.stdout
    assert "**********" in out.stdout


def test_missing_config_file_is_one_line(tmp_path):
    out = run_cli("--config", str(tmp_path / "nope.toml"), "check-config", cwd=tmp_path)
    assert out.returncode == 2 and "not found" in out.stderr and "Traceback" not in out.stderr


def test_db_upgrade_creates_a_database_and_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = run_cli("--database-url", url, "db", "upgrade", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "upgraded from empty" in first.stdout
    second = run_cli("--database-url", url, "db", "upgrade", cwd=tmp_path)
    assert "nothing to do" in second.stdout
