"""Running the real `watchdog` command in a child process, for tests where a bug could hide in how
the app is built or in how processes meet in one database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def watchdog_env(database_url: str, **more: str) -> dict:
    """This environment, pointed at the test database, without the developer's config or debug."""
    env = {**os.environ, "WATCHDOG_DATABASE_URL": database_url, **more}
    env.pop("WATCHDOG_CONFIG", None)
    env.pop("WATCHDOG_DEBUG", None)
    return env


def cli(*args: str, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """`watchdog ARGS…` to the end; its exit code and output."""
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def start(*args: str, cwd: Path, env: dict, **popen) -> subprocess.Popen:
    """`watchdog ARGS…` (or, with ``script=``, a Python file) started in the background."""
    script = popen.pop("script", None)
    command = [sys.executable, str(script)] if script else [sys.executable, "-m", "watchdog"]
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*command, *args], cwd=cwd, env=env, text=True, **popen)
