"""Autogenerate an Alembic revision from the models against a scratch SQLite database.

    python -m watchdog.devtools.make_migration "message"     a new revision on top of head
    python -m watchdog.devtools.make_migration --initial     rewrite 0001_initial from the models

``--initial`` is for the time before the first release only: it replaces the single initial
revision with one that creates the whole current schema. After a release, add revisions on top.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from watchdog.db import MIGRATIONS_DIR, alembic_config, make_engine, upgrade


def main(args: list[str]) -> None:
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    unknown = [a for a in args if a.startswith("-") and a != "--initial"]
    if unknown:
        sys.exit(f"make_migration: unknown option {unknown[0]} (see --help)")
    initial = "--initial" in args
    message = " ".join(a for a in args if a != "--initial") or ("initial schema" if initial else "schema change")
    versions = MIGRATIONS_DIR / "versions"
    if initial:
        for old in versions.glob("*.py"):
            old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scratch.db'}"
        engine = make_engine(url)
        if not initial:
            upgrade(engine)  # bring the scratch database to the current head first
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message, autogenerate=True,
                             rev_id="0001" if initial else None)


if __name__ == "__main__":
    main(sys.argv[1:])
