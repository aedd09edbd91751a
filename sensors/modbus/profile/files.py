"""Device profile files: the shipped profiles' directory, listing them, loading one. I/O (one YAML file read).

Part of `sensors.modbus.profile`; the parsed YAML is validated by `sensors.modbus.profile.parse`.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from sensors.modbus.profile.parse import parse_profile, show
from sensors.modbus.profile.records import Profile, ProfileError

__all__ = ["default_profiles_dir", "list_profiles", "load_profile"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def default_profiles_dir() -> Path:
    """The profiles shipped inside the package (sensors/profiles)."""
    return Path(__file__).resolve().parent.parent.parent / "profiles"


def list_profiles(profiles_dir: Path | None = None) -> list[str]:
    """Names of the profiles in `profiles_dir` (default: the shipped ones), sorted."""
    directory = profiles_dir or default_profiles_dir()
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name: str, profiles_dir: Path | None = None) -> Profile:
    """Read and validate `<profiles_dir>/<name>.yaml`; ProfileError lists every problem."""
    directory = profiles_dir or default_profiles_dir()
    path = directory / f"{name}.yaml"
    shown = f"sensors/profiles/{name}.yaml" if profiles_dir is None else str(path)
    if not _NAME.match(name):
        raise ProfileError(shown, [(f"{shown}: profile name: expected lowercase letters, digits, '.', '_', "
                                   f"'-', got {show(name)}")])
    if not path.is_file():
        available = ", ".join(list_profiles(profiles_dir)) or "none"
        raise ProfileError(shown, [f"{shown}: no such profile file (available: {available})"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(shown, [f"{shown}: not valid YAML: {exc}"]) from None
    return parse_profile(name, data, shown)
