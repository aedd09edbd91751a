"""What every `aqnet` command shares: the `--url/--config/--var` options, which database a command uses, the
configuration it loads and the running local stack's state. Shell (click); I/O: reads the configuration file and
`var/state.json`.

Contract: `database_target(url, config_path, var_dir)` answers "which database?" one way for every command: `--url`,
else the `--config` file's `database.url`, else the running local stack's (`var/state.json`, as `aqnet db url`
prints it); the settings are `--config`'s, or with `stack_config=True` and no `--config` the local stack's
configuration; none of them is a `click.ClickException` saying what to give. An invalid configuration is a
`click.ClickException` listing its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from aqnet.config import ConfigError, NetworkSettings, Settings, load_settings

__all__ = ["URL_HELP", "VAR_HELP", "DatabaseTarget", "database_options", "database_target", "load_config",
           "local_stack_state", "running_stack_state"]

VAR_HELP = "directory of the local stack (data, ports, logs); default ./var"
URL_HELP = "database URL (default: the configuration's, or the local stack's)"


def load_config(path: Path) -> Settings:
    """The settings of `path`, or a ClickException listing the configuration's errors."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None


def local_stack_state(var_dir: Path) -> dict[str, Any] | None:
    """The running local stack's `state.json` under `var_dir`, or None when `aqnet up` is not running there."""
    from aqnet.localstack.up import read_state  # it starts services: imported only by the commands that need it

    try:
        return read_state(var_dir)
    except FileNotFoundError:
        return None


def running_stack_state(var_dir: Path) -> dict[str, Any]:
    """The running local stack's state, or a ClickException saying how to start one."""
    state = local_stack_state(var_dir)
    if state is None:
        raise click.ClickException(f"aqnet up is not running here ({var_dir / 'state.json'} not found); "
                                   "start it with `make up` or `aqnet up`")
    return state


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """The database a command uses and the settings that came with it (None: neither --config nor, when asked
    for, the local stack's configuration)."""

    url: str
    settings: Settings | None

    @property
    def tz(self) -> ZoneInfo:
        """The network's time zone: the settings', else the default (America/Bogota)."""
        return ZoneInfo((self.settings.network if self.settings else NetworkSettings()).timezone)


def database_target(url: str | None, config_path: Path | None, var_dir: Path, *, exclusive: bool = False,
                    stack_config: bool = False) -> DatabaseTarget:
    """`--url`, else `--config`'s database, else the local stack's under `var_dir`; `exclusive`: --url and
    --config together are a usage error; `stack_config`: without --config, the settings are the local stack's
    configuration (when its state names one)."""
    if exclusive and url is not None and config_path is not None:
        raise click.UsageError("give either --url or --config, not both")
    settings = load_config(config_path) if config_path is not None else None
    state = local_stack_state(var_dir) if settings is None and (url is None or stack_config) else None
    if settings is None and stack_config and state is not None and state.get("config") \
            and Path(state["config"]).is_file():
        settings = load_config(Path(state["config"]))
    found = url or (settings.database.url if config_path is not None and settings else None) \
        or (state or {}).get("database_url")
    if not found:
        raise click.ClickException(f"no database given: pass --url or --config, or start the local stack "
                                   f"(`make up`); {var_dir / 'state.json'} not found")
    return DatabaseTarget(str(found), settings)


def database_options(config_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--url`, `--config` (`config_help`: what the command takes from it) and `--var`, in that order."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
                         help=VAR_HELP)(f)
        f = click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                         help=config_help)(f)
        return click.option("--url", default=None, help=URL_HELP)(f)

    return decorate
