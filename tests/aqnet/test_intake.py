"""Self-identifying microsensors end to end: a real airrohr POST body sent with curl to the daemon's HTTP intake,
and airrohr and PurpleAir payloads over MQTT, become rows attributed through the devices' hardware serials;
unknown hardware goes to the dead letters, never to a guessed sensor."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.publish as publish
import psycopg
import pytest
import yaml

from aqnet.localstack import MosquittoBroker, free_port
from tests.fixtures.listeners import http_listeners

SAMPLES = Path(__file__).parent.parent / "data" / "samples"
AIRROHR_POST = SAMPLES / "airrohr" / "airrohr-prometheus-exporter_README_post_body.json"  # esp8266id 12331981
AIRROHR_DHT22 = SAMPLES / "airrohr" / "luftdaten-server_README_dht22_post.json"  # esp8266id 1234567
PURPLEAIR = SAMPLES / "purpleair" / "purpleair-local_pa2_outdoor_dual_laser.json"  # 00:00:00:00:00:02


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _rows(url: str, sensor_id: str) -> dict[tuple[str, str], tuple[float, str, float, str]]:
    with psycopg.connect(url) as conn:
        return {(r[0], r[1]): r[2:] for r in conn.execute(
            "SELECT device_id, variable, value, unit, raw_value, raw_unit FROM measurements WHERE sensor_id = %s",
            (sensor_id,))}


@pytest.fixture
def daemon(tmp_path: Path, database_url: str, mosquitto: MosquittoBroker):
    http_port = free_port()
    cfg = {"database": {"url": database_url},
           "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"},
           "ingest": {"batch_max_age_s": 0.2},
           "http": http_listeners(http_port), "storage": {"spool_dir": str(tmp_path / "spool")},
           "network": {"microsensors": {
               "MS05": {"format": "airrohr", "transport": "http", "hardware_serial": "12331981"},
               "MS06": {"format": "purpleair", "hardware_serial": "00:00:00:00:00:02",
                        "devices": {"a": ["a", "bme"], "b": ["b"]}},
               "MS07": {"format": "airrohr", "hardware_serial": "1234567"}}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(tmp_path / "run.yaml")],
                            stdout=log, stderr=log)
    base = f"http://127.0.0.1:{http_port}"
    try:
        _wait(lambda: subprocess.run(["curl", "-sf", f"{base}/healthz"], capture_output=True).returncode == 0,
              30, "the daemon's HTTP server")
        yield {"base": base, "db": database_url, "mqtt_port": int(mosquitto.url.rsplit(":", 1)[1]),
               "log": tmp_path / "daemon.log"}
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log.close()


def _curl_post(url: str, body: Path, sensor_header: str) -> tuple[int, dict]:
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", url,
                          "-H", "Content-Type: application/json", "-H", f"X-Sensor: {sensor_header}",
                          "--data-binary", f"@{body}"], capture_output=True, text=True, timeout=60, check=True)
    text, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(text)


def test_airrohr_post_with_curl_becomes_rows(daemon: dict) -> None:
    code, body = _curl_post(f"{daemon['base']}/intake/airrohr", AIRROHR_POST, "esp8266-12331981")
    assert code == 200, body  # answered only once durable: the rows are there now
    rows = _rows(daemon["db"], "MS05")
    assert body == {"sensor_id": "MS05", "readings": len(rows)}
    assert rows[("MS05", "pm10")][2:] == (0.40, "µg/m³")  # airrohr P1 is PM10
    assert rows[("MS05", "pm25")][2:] == (0.20, "µg/m³")
    value, unit, raw, raw_unit = rows[("MS05", "pressure")]
    assert (raw, raw_unit, unit) == (100613.25, "Pa", "hPa") and value == pytest.approx(1006.1325)
    assert rows[("MS05", "temperature")][:2] == (20.47, "°C")
    assert rows[("MS05", "relativehumidity")][:2] == (69.02, "%")
    # PM measured at local conditions is corrected to reference conditions (25 °C, 760 mmHg) with the sensor's
    # own temperature and pressure from the same message
    factor = (1013.25 / 1006.1325) * ((20.47 + 273.15) / 298.15)
    assert rows[("MS05", "pm10")][0] == pytest.approx(0.40 * factor)


def test_a_retried_post_is_stored_once_and_a_new_one_is_stored(daemon: dict, tmp_path: Path) -> None:
    # airrohr sends no time: each POST is stamped on receipt, so a retry (after a 503, or by a proxy) would be a
    # second set of rows without its identity (sensors/delivery.py)
    url = f"{daemon['base']}/intake/airrohr"
    for _ in range(3):
        code, body = _curl_post(url, AIRROHR_POST, "esp8266-12331981")
        assert code == 200, body
    with psycopg.connect(daemon["db"], autocommit=True) as conn:
        def count() -> int:
            return conn.execute("SELECT count(*) FROM measurements WHERE sensor_id = 'MS05'").fetchone()[0]

        once = count()
        assert once == body["readings"] == len(_rows(daemon["db"], "MS05"))
        assert conn.execute("SELECT count(*) FROM delivery_receipts WHERE key LIKE 'http:MS05:%'").fetchone()[0] == 1
        changed = tmp_path / "next.json"
        changed.write_text(AIRROHR_POST.read_text().replace('"20.47"', '"20.52"'))
        time.sleep(0.01)  # a later receive time
        code, body = _curl_post(url, changed, "esp8266-12331981")
        assert code == 200 and count() == 2 * once  # the next message is new readings


def test_unknown_hardware_is_a_dead_letter_not_a_guess(daemon: dict, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(AIRROHR_POST.read_text().replace("12331981", "99999999"))
    code, body = _curl_post(f"{daemon['base']}/intake/airrohr", other, "esp8266-99999999")
    assert code == 404 and body["error"] == "unknown_device"
    with psycopg.connect(daemon["db"]) as conn:
        letters = conn.execute("SELECT source, reason, payload FROM dead_letters WHERE source = 'http'").fetchall()
        stored = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
    assert [(s, r) for s, r, _ in letters] == [("http", "unknown_device")]
    assert bytes(letters[0][2]) == other.read_bytes()
    assert stored == 0


def test_airrohr_and_purpleair_over_mqtt_are_attributed_by_hardware_serial(daemon: dict) -> None:
    port = daemon["mqtt_port"]
    publish.single("purpleair/pa-0002/data", PURPLEAIR.read_bytes(), qos=1, hostname="127.0.0.1", port=port)
    publish.single("airrohr/1234567/data", AIRROHR_DHT22.read_bytes(), qos=1, hostname="127.0.0.1", port=port)
    _wait(lambda: _rows(daemon["db"], "MS06") and _rows(daemon["db"], "MS07"), 20, "rows for MS06 and MS07")
    pa = _rows(daemon["db"], "MS06")
    assert {d for d, _ in pa} == {"MS06-a", "MS06-b"}  # the two lasers are two devices
    assert pa[("MS06-a", "temperature")][2:] == (80.0, "°F")  # the BME280 channel is declared on device a
    assert pa[("MS06-a", "temperature")][0] == pytest.approx((80 - 32) * 5 / 9)
    dht = _rows(daemon["db"], "MS07")
    assert dht[("MS07", "temperature")][:2] == (28.9, "°C")
    assert dht[("MS07", "pm10")][2:] == (4.05, "µg/m³")
