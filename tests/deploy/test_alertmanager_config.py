"""deploy/alertmanager/alertmanager.yml: valid for the real `amtool check-config` (Debian package
prometheus-alertmanager), and routes each severity and locality of aqnet's alerts to the receiver README promises
(`amtool config routes test`), on the labels aqnet posts (alerts/delivery/channels/alertmanager.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"
pytestmark = pytest.mark.integration


def _routes(*labels: str) -> list[str]:
    out = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={CONFIG}", *labels],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split()


def test_config_is_valid() -> None:
    out = subprocess.run(["amtool", "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout and "7 receivers" in out.stdout


def test_a_broken_config_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "am.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: officers-critical", "receiver: nobody"))
    out = subprocess.run(["amtool", "check-config", str(broken)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "nobody" in out.stdout + out.stderr


AIR = ("audience=officers", "source=aqnet", "kind=threshold", "indicative=false", "alertname=pm25-24h-levels")


@pytest.mark.parametrize(("severity", "locality", "receivers"), [
    ("critical", "Suba", ["officers-critical"]),
    ("warning", "Suba", ["officers-email"]),
    ("info", "Suba", ["officers-webhook"]),
    ("critical", "Usme", ["officers-critical"]),
    ("critical", "Kennedy", ["officers-southwest-critical"]),
    ("warning", "Kennedy", ["officers-southwest-email"]),
    ("info", "Kennedy", ["officers-webhook"]),
    ("critical", "Puente Aranda", ["officers-southwest-critical"]),
    ("warning", "Fontibón", ["officers-southwest-email"]),
    ("warning", "", ["officers-email"]),  # network or locality-less scope
])
def test_air_quality_alerts_route_by_severity_and_locality(severity: str, locality: str,
                                                           receivers: list[str]) -> None:
    assert _routes(*AIR, f"severity={severity}", f"locality={locality}") == receivers


@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_microsensor_alerts_are_indicative_and_routed_apart(severity: str) -> None:
    labels = [lb for lb in AIR if not lb.startswith("indicative")]
    assert _routes(*labels, "indicative=true", f"severity={severity}", "locality=Kennedy") == [
        "officers-indicative-webhook"]


@pytest.mark.parametrize("labels", [
    ("audience=technicians", "source=aqnet", "kind=no_data", "severity=warning", "locality=Kennedy"),
    ("audience=technicians", "source=prometheus", "alertname=AqnetIngestStalled", "severity=critical"),
])
def test_equipment_and_health_alerts_go_to_technicians(labels: tuple[str, ...]) -> None:
    assert _routes(*labels) == ["technicians-email"]
