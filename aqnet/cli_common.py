"""What every `aqnet` command shares: the `--var` help, loading the configuration, the local stack's state."""

from __future__ import annotations

from pathlib import Path

import click

from aqnet.config import ConfigError, Settings, load_settings

__all__ = ["VAR_HELP", "_settings", "_state"]

VAR_HELP = "directory of the local stack (data, ports, logs); default ./var"


def _settings(path: Path) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None


def _state(var: Path) -> dict:
    from aqnet.up import read_state

    try:
        return read_state(var)
    except FileNotFoundError:
        raise click.ClickException(f"aqnet up is not running here ({var / 'state.json'} not found); "
                                   "start it with `make up` or `aqnet up`") from None
