"""deploy/systemd/aqnet.service: `systemd-analyze verify` finds nothing to say (it warns, exit 0, on unknown or
malformed keys, so its output must be empty), the sandbox is scored OK by `systemd-analyze security --offline`,
and the unit runs the commands the CLI really has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "aqnet.service"
AQNET = Path(sys.executable).with_name("aqnet")
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed (Debian package systemd)")


def _installed_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit as installed, with ExecStart pointing at this checkout's aqnet (verify checks it is executable)."""
    unit = tmp_path / "aqnet.service"
    unit.write_text((text or UNIT.read_text()).replace("/opt/aqnet/bin/aqnet", str(AQNET)))
    return unit


def _verify(unit: Path) -> str:
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    return (out.stdout + out.stderr).strip()


def test_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    assert _verify(_installed_copy(tmp_path)) == ""


def test_a_misspelt_sandbox_option_would_be_reported(tmp_path: Path) -> None:
    unit = _installed_copy(tmp_path, UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "Unknown key 'ProtectSytem'" in _verify(unit)


def test_sandbox_exposure_is_low(tmp_path: Path) -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(_installed_copy(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for aqnet.service: ([0-9.]+) (\w+)", out.stdout)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.0 and match.group(2) == "OK", match.group(0)


def test_unit_runs_real_commands() -> None:
    text = UNIT.read_text()
    for line in re.findall(r"^Exec\w+=(.*)$", text, flags=re.MULTILINE):
        args = line.split()
        assert args[0] == "/opt/aqnet/bin/aqnet"
        out = subprocess.run([str(AQNET), *[a for a in args[1:] if not a.startswith("--")][:2], "--help"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{line}: {out.stderr}"
        for option in re.findall(r"(--[a-z-]+)", line):
            assert option in out.stdout, f"{line}: no option {option}"
