"""config/watchdog.example.toml documents every setting and is itself a valid configuration."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel

from watchdog.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "watchdog.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


def _documented(text: str) -> set[str]:
    """Keys set or shown commented-out in the file, with their [section] prefix."""
    found, section = set(), ""
    for line in text.splitlines():
        head = re.match(r"^\s*\[([\w.]+)\]", line)
        if head:
            section = head.group(1) + "."
            continue
        key = re.match(r"^\s*#?\s*(\w+)\s*=", line)
        if key:
            found.add(section + key.group(1))
    return found


def test_every_setting_is_documented_in_the_example_file():
    missing = sorted(set(_keys(Settings)) - _documented(EXAMPLE.read_text(encoding="utf-8")))
    assert not missing, f"settings missing from {EXAMPLE.name}: {missing}"


def test_the_example_file_is_a_valid_configuration_equal_to_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    from_file = load_settings(EXAMPLE)
    assert from_file.model_dump(mode="json") == load_settings().model_dump(mode="json")
