"""README documents every configuration key, every metric and every CLI command (datasette's docs test)."""

from __future__ import annotations

import re
from pathlib import Path

from click import Group
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aqnet.cli import cli
from aqnet.config import Settings
from aqnet.metrics import Metrics

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_key_is_documented() -> None:
    missing = [k for k in _keys(Settings) if f"`{k}`" not in README]
    assert not missing


def test_every_metric_is_documented() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    names = {m.name for m in registry.collect()}
    assert names
    missing = [n for n in names if not re.search(rf"`{n}(_total)?`", README)]
    assert not missing


def _commands(group: Group, prefix: str = "aqnet") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        out += _commands(cmd, f"{prefix} {name}") if isinstance(cmd, Group) else [f"{prefix} {name}"]
    return out


def test_every_cli_command_is_documented() -> None:
    missing = [c for c in _commands(cli) if f"`{c}" not in README]
    assert not missing
