"""Helpers for the source tests: the example vendor export, settings, and what the store holds."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from watchdog.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "examples" / "mappings" / "sagsflow.toml"
EXPORT = ROOT / "examples" / "mappings" / "sagsflow-export"
# What a real export carries in the columns the mapping drops: it must never reach the store.
CPR = "010203-1234"
CHILD = "Testbarn Hemmeligsen"


def drop_export(folder: Path, *, sub: str | None = None, cpr: str = CPR) -> Path:
    """Copy the example export into the drop folder, with a CPR-looking number and a child's name."""
    target = folder / sub if sub else folder
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(EXPORT.glob("*.csv")):
        data = path.read_text(encoding="utf-8-sig")
        if path.name == "sager.csv":
            data = data.replace("xxxxxx-xxxx", cpr).replace("Testbarn Et", CHILD)
        (target / path.name).write_text(data, encoding="utf-8-sig")
    return target


def source_settings(tmp_path: Path, **intake):
    defaults = {"drop_poll_seconds": 60, "drop_mapping": str(MAPPING)}
    return load_settings(None, intake=defaults | intake,
                         delivery={"ops_urls": ["mailto://drift@kommune.example.dk"]})


def ext_ids(engine, table) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(table.ext_id)).all())


def store_contains(engine, needle: str) -> list[str]:
    """Every table.column whose text holds ``needle`` (to prove a dropped value was never stored)."""
    from watchdog.tables import metadata

    from sqlalchemy import Enum, String

    found = []
    with engine.connect() as conn:
        for tbl in metadata.sorted_tables:
            for col in tbl.columns:
                if isinstance(col.type, String) and not isinstance(col.type, Enum) and conn.execute(
                        select(col).where(col.contains(needle)).limit(1)).first():
                    found.append(f"{tbl.name}.{col.name}")
    return found


def ops_alerts(engine) -> list:
    from watchdog.outbox import Alert, AlertKind

    with Session(engine) as session:
        return list(session.exec(select(Alert).where(Alert.kind == AlertKind.OPS)))
