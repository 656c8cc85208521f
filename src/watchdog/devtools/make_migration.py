"""Autogenerate an Alembic revision from the models against a scratch SQLite database.

Usage: python -m watchdog.devtools.make_migration "message"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from watchdog.db import alembic_config, make_engine, upgrade


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scratch.db'}"
        engine = make_engine(url)
        upgrade(engine)  # bring the scratch database to the current head first
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "schema change")
