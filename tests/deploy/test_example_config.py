"""The example configurations in deploy/ load with the daemon's own validation (a renamed key fails here), and the
production one is what README promises: TLS to the broker, a read-only container-friendly spool path, real
alert channels and retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.settings import EmailChannel
from aqnet.config import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("name", ["aqnet.example.yaml", "aqnet.production.yaml"])
def test_example_configuration_is_valid(name: str) -> None:
    load_settings(DEPLOY / name)


def test_production_configuration_uses_tls_passwords_and_real_channels() -> None:
    s = load_settings(DEPLOY / "aqnet.production.yaml")
    assert s.mqtt.url.startswith("mqtts://") and s.mqtt.ca_file
    assert "sslmode=verify-full" in s.database.url
    assert s.storage.spool_dir.startswith("/var/lib/aqnet/") and s.alerts.signing_key_file.startswith("/var/lib/aqnet/")
    assert {c.type for c in s.alerts.channels} == {"email", "webhook", "alertmanager", "mqtt"}
    assert all(c.starttls for c in s.alerts.channels if isinstance(c, EmailChannel))
    officers = [c for c in s.alerts.channels if c.audience == ["officers"]]
    technicians = [c for c in s.alerts.channels if c.audience == ["technicians"]]
    assert officers and technicians  # air quality to officers, equipment to technicians
    assert s.retention.measurements_days > 0


def test_a_typo_in_the_production_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "aqnet.yaml"
    bad.write_text((DEPLOY / "aqnet.production.yaml").read_text().replace("starttls: true", "start_tls: true"))
    with pytest.raises(ValueError, match=r"alerts\.channels\.0\.email\.start_tls: unknown key"):
        load_settings(bad)
