"""Self-identifying microsensors end to end: a real airrohr POST body sent with curl to the daemon's HTTP intake
listener, with the sensor's HTTP credentials (`aqnet sensors credentials MS05 --http`), and airrohr and PurpleAir
payloads over MQTT, become rows attributed through the devices' hardware serials; unknown hardware goes to the
dead letters, never to a guessed sensor.

Attacks (docs/security.md, "HTTP listeners and device authentication"): a POST without, or with unknown or wrong,
credentials stores nothing and gets one and the same 401; a sensor's credentials with another sensor's chip id
(HTTP or MQTT) are refused 403 and dead-lettered; a 10 MB body is refused 413 before it is read; a flood of
made-up bearer tokens leaves ingest storing every MQTT message; no listener serves another's paths."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from paho.mqtt import publish

from aqnet.localstack import MosquittoBroker, free_port
from tests.fixtures.listeners import alert_keys_in, http_listeners

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
def daemon(request: pytest.FixtureRequest, tmp_path: Path, database_url: str, mosquitto: MosquittoBroker):
    http_port, intake_port, api_port, public_port = free_port(), free_port(), free_port(), free_port()
    failures = int(getattr(request, "param", 20))
    cfg = {"database": {"url": database_url, "pool_max_size": 2},
           "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"},
           "ingest": {"batch_max_age_s": 0.2},
           "http": http_listeners(http_port, intake=intake_port, api=api_port, public=public_port,
                                 auth_failures_per_minute=failures),
           "storage": {"spool_dir": str(tmp_path / "spool")}, "alerts": alert_keys_in(tmp_path),
           "network": {"microsensors": {
               "MS05": {"format": "airrohr", "transport": "http", "hardware_serial": "12331981"},
               "MS08": {"format": "airrohr", "transport": "http", "hardware_serial": "7654321"},
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
        issued = subprocess.run([sys.executable, "-m", "aqnet", "sensors", "credentials", "MS05", "--http", "--url",
                                 database_url, "--json"], capture_output=True, text=True, timeout=60, check=True)
        password = json.loads(issued.stdout)["password"]
        yield {"base": f"http://127.0.0.1:{intake_port}", "internal": base, "api": f"http://127.0.0.1:{api_port}",
               "public": f"http://127.0.0.1:{public_port}",
               "db": database_url, "mqtt_port": int(mosquitto.url.rsplit(":", 1)[1]),
               "log": tmp_path / "daemon.log", "auth": ("MS05", password)}
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log.close()


def _curl_post(url: str, body: Path, sensor_header: str, auth: tuple[str, str] | None) -> tuple[int, dict]:
    user = ["-u", f"{auth[0]}:{auth[1]}"] if auth else []
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", url, *user,
                          "-H", "Content-Type: application/json", "-H", f"X-Sensor: {sensor_header}",
                          "--data-binary", f"@{body}"], capture_output=True, text=True, timeout=60, check=True)
    text, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(text)


def test_airrohr_post_with_curl_becomes_rows(daemon: dict) -> None:
    code, body = _curl_post(f"{daemon['base']}/intake/airrohr", AIRROHR_POST, "esp8266-12331981", daemon["auth"])
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
        code, body = _curl_post(url, AIRROHR_POST, "esp8266-12331981", daemon["auth"])
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
        code, body = _curl_post(url, changed, "esp8266-12331981", daemon["auth"])
        assert code == 200 and count() == 2 * once  # the next message is new readings


def test_unknown_hardware_is_a_dead_letter_not_a_guess(daemon: dict, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(AIRROHR_POST.read_text().replace("12331981", "99999999"))
    code, body = _curl_post(f"{daemon['base']}/intake/airrohr", other, "esp8266-99999999", daemon["auth"])
    assert code == 404 and body["error"] == "unknown_device"
    with psycopg.connect(daemon["db"]) as conn:
        letters = conn.execute("SELECT source, reason, payload FROM dead_letters WHERE source = 'http'").fetchall()
        stored = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
    assert [(s, r) for s, r, _ in letters] == [("http", "unknown_device")]  # by the authenticated MS05
    assert bytes(letters[0][2]) == other.read_bytes()
    assert stored == 0


def test_airrohr_and_purpleair_over_mqtt_are_attributed_by_hardware_serial(daemon: dict) -> None:
    port = daemon["mqtt_port"]
    live = json.loads(PURPLEAIR.read_bytes())  # a live device sends its current time (older ones are refused)
    live["DateTime"] = datetime.now(UTC).strftime("%Y/%m/%dT%H:%M:%Sz")
    publish.single("purpleair/MS06/data", json.dumps(live).encode(), qos=1, hostname="127.0.0.1", port=port)
    publish.single("airrohr/MS07/data", AIRROHR_DHT22.read_bytes(), qos=1, hostname="127.0.0.1", port=port)
    _wait(lambda: _rows(daemon["db"], "MS06") and _rows(daemon["db"], "MS07"), 20, "rows for MS06 and MS07")
    pa = _rows(daemon["db"], "MS06")
    assert {d for d, _ in pa} == {"MS06-a", "MS06-b"}  # the two lasers are two devices
    assert pa[("MS06-a", "temperature")][2:] == (80.0, "°F")  # the BME280 channel is declared on device a
    assert pa[("MS06-a", "temperature")][0] == pytest.approx((80 - 32) * 5 / 9)
    dht = _rows(daemon["db"], "MS07")
    assert dht[("MS07", "temperature")][:2] == (28.9, "°C")
    assert dht[("MS07", "pm10")][2:] == (4.05, "µg/m³")


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def _post(url: str, body: bytes, headers: dict[str, str] | None = None,
          auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})},
                      auth=auth, timeout=60)


def test_no_unknown_or_wrong_credentials_store_nothing_and_get_one_answer(daemon: dict) -> None:
    url = f"{daemon['base']}/intake/airrohr"
    body = AIRROHR_POST.read_bytes()
    sensor, password = daemon["auth"]
    answers = {
        "none": _post(url, body),
        "wrong password": _post(url, body, auth=(sensor, password[:-1] + ("x" if password[-1] != "x" else "y"))),
        "unknown sensor": _post(url, body, auth=("MS99", password)),
        "a sensor without credentials": _post(url, body, auth=("MS08", password)),
        "not basic": _post(url, body, headers={"Authorization": f"Bearer {password}"}),
        "malformed": _post(url, body, headers={"Authorization": "Basic !!!"}),
    }
    first = answers["none"]
    for why, r in answers.items():
        assert (r.status_code, r.content) == (401, first.content), why
        assert r.headers["www-authenticate"] == 'Basic realm="aqnet intake"', why
    assert password not in first.text
    assert _count(daemon["db"], "SELECT count(*) FROM measurements") == 0
    assert _count(daemon["db"], "SELECT count(*) FROM dead_letters WHERE source = 'http'") == 0
    assert password not in daemon["log"].read_text(errors="replace")
    assert _post(url, body, auth=daemon["auth"]).status_code == 200  # and the right ones are taken


@pytest.mark.parametrize("victim", ["7654321", "1234567"], ids=["http-sensor-MS08", "mqtt-sensor-MS07"])
def test_credentials_of_one_sensor_with_another_sensors_chip_id_are_refused_and_dead_lettered(
        daemon: dict, tmp_path: Path, victim: str) -> None:
    forged = AIRROHR_POST.read_bytes().replace(b"12331981", victim.encode())
    r = _post(f"{daemon['base']}/intake/airrohr", forged, headers={"X-Sensor": f"esp8266-{victim}"},
              auth=daemon["auth"])
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert _count(daemon["db"], "SELECT count(*) FROM measurements") == 0
    with psycopg.connect(daemon["db"]) as conn:
        letters = conn.execute("SELECT source, reason, sensor_id, payload FROM dead_letters "
                               "WHERE source = 'http'").fetchall()
    assert [(s, reason, sid) for s, reason, sid, _ in letters] == [("http", "identity_mismatch", "MS05")]
    assert bytes(letters[0][3]) == forged


def _raw_request(port: int, head: bytes, body: bytes, rest: int) -> tuple[bytes, bool]:
    """Send `head` and `body` (no end of the request), read the server's answer, then try to send `rest` bytes
    more: (the answer, whether the server took all of them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < 10:
            chunk = sock.recv(65536)  # the server answers with the request unfinished: it did not wait for it
            if not chunk:
                break
            answer += chunk
        try:
            for _ in range(rest // 65536):
                sock.sendall(b"[" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            return answer, False
        return answer, True


def test_a_10_mb_body_is_refused_before_it_is_read(daemon: dict) -> None:
    port = int(daemon["base"].rsplit(":", 1)[1])
    sensor, password = daemon["auth"]
    creds = base64.b64encode(f"{sensor}:{password}".encode())
    big = 10 << 20
    head = (b"POST /intake/airrohr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Basic "
            + creds + b"\r\nContent-Length: " + str(big).encode() + b"\r\n\r\n")
    # by its length: answered after the headers alone, and the connection closed: the 10 MB are not taken
    answer, took_all = _raw_request(port, head, b"", big)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"body_too_large" in answer
    assert not took_all
    # streamed without a length: answered once past the limit (64 KiB), and closed
    head = head.replace(b"Content-Length: " + str(big).encode(), b"Transfer-Encoding: chunked")
    chunk = b"%x\r\n" % 65536 + b"[" * 65536 + b"\r\n"
    answer, took_all = _raw_request(port, head, chunk * 3, big)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"body_too_large" in answer
    assert not took_all
    assert _count(daemon["db"], "SELECT count(*) FROM measurements") == 0


def test_no_listener_serves_another_listeners_paths(daemon: dict) -> None:
    internal = ["/metrics", "/status", "/docs", "/openapi.json", "/healthz", "/readyz", "/redoc"]
    for base in (daemon["base"], daemon["api"]):
        for path in internal:
            assert httpx.get(base + path, timeout=30).status_code == 404, (base, path)
    assert httpx.get(f"{daemon['base']}/api/v1/me", timeout=30).status_code == 404
    assert httpx.post(f"{daemon['api']}/intake/airrohr", content=b"{}", timeout=30).status_code == 404
    assert httpx.post(f"{daemon['internal']}/intake/airrohr", content=b"{}", timeout=30).status_code == 404
    assert httpx.get(f"{daemon['internal']}/api/v1/me", timeout=30).status_code == 404
    for path in internal[:-1]:
        assert httpx.get(daemon["internal"] + path, timeout=30, follow_redirects=True).status_code == 200, path
    assert "/api/v1/me" in httpx.get(f"{daemon['internal']}/openapi.json", timeout=30).json()["paths"]
    # the open-data listener serves /v1 alone, read-only, from the daemon's database
    for base in (daemon["base"], daemon["api"], daemon["internal"]):
        assert httpx.get(f"{base}/v1/about", timeout=30).status_code == 404, base
    for path in [*internal, "/api/v1/me"]:
        assert httpx.get(daemon["public"] + path, timeout=30).status_code == 404, path
    assert httpx.post(f"{daemon['public']}/intake/airrohr", content=b"{}", timeout=30).status_code == 405
    locations = httpx.get(f"{daemon['public']}/v1/locations", params={"limit": 1000}, timeout=30)
    assert locations.status_code == 200
    assert {"MS05", "MS06"} <= {loc["id"] for loc in locations.json()["results"]}
    assert "/v1/latest" in httpx.get(f"{daemon['public']}/v1/openapi.json", timeout=30).json()["paths"]
    # the web console lives on the API listener only (and is not in the API's schema)
    assert httpx.get(f"{daemon['api']}/console/login", timeout=30).status_code == 200
    for base in (daemon["base"], daemon["internal"]):
        assert httpx.get(f"{base}/console/login", timeout=30).status_code == 404, base
    assert not [p for p in httpx.get(f"{daemon['internal']}/openapi.json", timeout=30).json()["paths"]
                if p.startswith("/console")]


@pytest.mark.parametrize("daemon", [1_000_000], indirect=True)  # no failure limit: every made-up token is looked up
def test_a_flood_of_made_up_bearer_tokens_leaves_ingest_storing(daemon: dict) -> None:
    stop = threading.Event()
    answers: Counter[int] = Counter()

    def flood() -> None:
        with httpx.Client(base_url=daemon["api"], timeout=60) as client:
            while not stop.is_set():
                token = "aqn_" + secrets.token_urlsafe(32)
                answers[client.get("/api/v1/sensors", headers={"Authorization": f"Bearer {token}"}).status_code] += 1

    floods = [threading.Thread(target=flood) for _ in range(16)]
    for t in floods:
        t.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # inside the device-time window
    try:
        _wait(lambda: sum(answers.values()) >= 50, 60, "the flood to be under way")
        for n in range(20):  # published while the flood runs
            t = (start + timedelta(seconds=n)).isoformat()
            publish.single("aqnet/MS01/readings", json.dumps({"time": t, "values": {"pm25": 12.5}}), qos=1,
                           hostname="127.0.0.1", port=daemon["mqtt_port"])
        during = sum(answers.values())
        _wait(lambda: _count(daemon["db"], "SELECT count(*) FROM measurements WHERE sensor_id = 'MS01'") == 20,
              60, "the 20 MQTT messages stored")
        assert sum(answers.values()) > during  # the flood was still going while they were stored
    finally:
        stop.set()
        for t in floods:
            t.join(60)
    assert set(answers) <= {401, 503} and answers[401] > 0
