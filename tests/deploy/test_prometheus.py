"""deploy/prometheus: the scrape configuration, recording rules and aqnet-health alert rules are valid for the real
Prometheus tools (`promtool check config`, `check rules`, `test rules` with a test per alert rule), and the metrics
a running daemon serves pass `promtool check metrics` (Debian package prometheus, installed by
deploy/install-system.sh)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from aqnet.localstack import MosquittoBroker, free_port
from tests.fixtures.listeners import alert_keys_in, http_listeners

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
AIRROHR_POST = Path(__file__).resolve().parents[1] / "data" / "samples" / "airrohr" / \
    "airrohr-prometheus-exporter_README_post_body.json"
pytestmark = pytest.mark.integration


def _promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=PROM, input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, timeout=120)


def test_scrape_configuration_and_rule_files_are_valid() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 2 rule files found" in out.stdout
    out = _promtool("check", "rules", "rules/aqnet-recording.yml", "rules/aqnet-alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_rule_has_a_unit_test_and_the_tests_pass() -> None:
    rules = yaml.safe_load((PROM / "rules" / "aqnet-alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROM / "tests" / "aqnet-alerts.test.yml").read_text())
    tested: dict[str, set[bool]] = {}
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            tested.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert alerts == set(tested), f"alert rules without a test: {sorted(alerts - set(tested))}"
    for name, outcomes in tested.items():
        assert outcomes == {True, False}, f"{name}: needs a case where it fires and one where it does not"
    out = _promtool("test", "rules", "tests/aqnet-alerts.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_a_broken_rule_is_caught_by_the_same_check(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((PROM / "rules" / "aqnet-alerts.yml").read_text().replace(
        "rate(aqnet_ingest_readings_total[10m])", "rate(aqnet_ingest_readings_total[10m]"))
    out = _promtool("check", "rules", str(broken))
    said = out.stdout + out.stderr
    assert out.returncode != 0 and "AqnetIngestStalled" in said and "parse error" in said


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def test_live_metrics_of_a_running_daemon_pass_promtool(tmp_path: Path, database_url: str,
                                                        mosquitto: MosquittoBroker) -> None:
    http_port, intake_port = free_port(), free_port()
    cfg = {"database": {"url": database_url},
           "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"},
           "ingest": {"batch_max_age_s": 0.2}, "http": http_listeners(http_port, intake=intake_port),
           "storage": {"spool_dir": str(tmp_path / "spool")}, "alerts": alert_keys_in(tmp_path),
           "network": {"microsensors": {"MS05": {"format": "airrohr", "transport": "http",
                                                 "hardware_serial": "12331981"}}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    with (tmp_path / "daemon.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(tmp_path / "run.yaml")],
                                stdout=log, stderr=log)
        base = f"http://127.0.0.1:{http_port}"
        try:
            def up() -> bool:
                try:
                    return json.loads(_get(f"{base}/healthz"))["status"] == "ok"
                except OSError:
                    return False

            _wait(up, 30, "the daemon's HTTP server")
            issued = subprocess.run([sys.executable, "-m", "aqnet", "sensors", "credentials", "MS05", "--http",
                                     "--url", database_url, "--json"], capture_output=True, text=True, timeout=60,
                                    check=True)
            basic = base64.b64encode(f"MS05:{json.loads(issued.stdout)['password']}".encode()).decode()
            request = urllib.request.Request(f"http://127.0.0.1:{intake_port}/intake/airrohr",
                                             data=AIRROHR_POST.read_bytes(), method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Basic {basic}",
                                                      "X-Sensor": "esp8266-12331981"})
            with urllib.request.urlopen(request, timeout=30) as r:
                assert r.status == 200
            metrics = _get(f"{base}/metrics")
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0, (tmp_path / "daemon.log").read_text()
    text = metrics.decode()
    assert 'aqnet_ingest_readings_total{protocol="http"}' in text  # the live values, not an empty registry
    out = _promtool("check", "metrics", stdin=metrics)
    assert out.returncode == 0, out.stdout + out.stderr
    # every metric the alert and recording rules use is one the daemon serves (a renamed metric breaks a rule)
    rules = (PROM / "rules" / "aqnet-recording.yml").read_text() + (PROM / "rules" / "aqnet-alerts.yml").read_text()
    used = {m.removesuffix("_bucket") for m in re.findall(r"\b(aqnet_[a-z_]+)\b", rules)}
    served = set(re.findall(r"^# TYPE (aqnet_[a-z_]+) ", text, flags=re.MULTILINE))
    served |= {s.removesuffix("_total") for s in served}
    missing = {m for m in used if m not in served and m.removesuffix("_total") not in served}
    assert not missing, f"rules use metrics the daemon does not serve: {sorted(missing)}"
