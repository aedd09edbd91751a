"""The web console in a real browser (headless Debian Chromium, Selenium through /usr/bin/chromedriver) against
real TimescaleDB and the real daemon or API app: a technician registers a microsensor, issues its HTTP
credentials and watches its first readings (raw, normalised, flags, verdict) arrive in the commissioning view
through the daemon's intake; an officer acknowledges an alert raised by the PM2.5 episode (the alert-delivery
harness's simulated city through the real write path and stage jobs) and `aqnet alerts show` says so, and
invalidates a period selected on the series chart; a reader cannot
reach officers' pages; a form sent without its CSRF token is refused; five wrong passwords lock the account.
Each page is saved at 1280 and 360 px wide in var/test-output/screenshots/ (browser.shoot)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from psycopg import AsyncConnection
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from aqnet.localstack import MosquittoBroker
from tests.aqnet.api.test_alerts import seed_alert
from tests.aqnet.console.browser import chromium, console_server, daemon, shoot, sign_in, sign_out, wait_for
from tests.aqnet.console.test_access import PASSWORD, make_users
from tests.e2e.alert_harness import BOGOTA, AlertHarness, test_rules

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
AIRROHR_POST = SAMPLES / "airrohr" / "airrohr-prometheus-exporter_README_post_body.json"  # esp8266id 12331981


def _aqnet(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "aqnet", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def test_technician_registers_a_microsensor_issues_credentials_and_watches_its_first_readings(
        tmp_path: Path, database_url: str, mosquitto: MosquittoBroker) -> None:
    asyncio.run(make_users(database_url))
    with daemon(tmp_path, database_url, mosquitto.url) as stack, chromium() as driver:
        base = stack["api"]
        driver.get(f"{base}/console/login")
        shoot(driver, "login")
        sign_in(driver, base, "ana-technician", PASSWORD)
        wait_for(lambda: driver.find_element(By.ID, "sensor-list"), 20, "the sensor list")
        shoot(driver, "sensors")
        driver.find_element(By.ID, "register-link").click()
        fields = {"f-sensor_id": "MSC1", "f-name": "Kit on the school roof", "f-lat": "4.63", "f-lon": "-74.08",
                  "f-locality": "Teusaquillo", "f-device_id": "MSC1-a", "f-profile": "airrohr",
                  "f-variables": "pm25 pm10 temperature relativehumidity pressure",
                  "f-hardware_serial": "12331981"}
        for element_id, value in fields.items():
            driver.find_element(By.ID, element_id).send_keys(value)
        Select(driver.find_element(By.ID, "f-protocol")).select_by_visible_text("http")
        shoot(driver, "register")
        driver.find_element(By.ID, "register-submit").click()
        wait_for(lambda: "MSC1" in driver.find_element(By.TAG_NAME, "h1").text, 20, "the new sensor's page")
        assert _text(driver, "lifecycle") == "commissioning"
        driver.find_element(By.ID, "issue-credentials").click()
        password = wait_for(lambda: _text(driver, "issued-password"), 20, "the issued password")
        shoot(driver, "credentials")
        driver.find_element(By.ID, "commissioning-link").click()
        wait_for(lambda: driver.find_element(By.ID, "verdict"), 20, "the commissioning view")
        assert _text(driver, "verdict") == "FAIL"  # nothing received yet
        assert "Waiting for the first readings" in _text(driver, "readings")
        shoot(driver, "commissioning-waiting")

        def post() -> bool:  # the daemon follows the registry within registry.refresh_s: until then a 401/404
            answer = httpx.post(f"{stack['intake']}/intake/airrohr", content=AIRROHR_POST.read_bytes(),
                                auth=("MSC1", password), headers={"X-Sensor": "esp8266-12331981",
                                                                  "Content-Type": "application/json"})
            return answer.status_code == 200

        wait_for(post, 30, "the intake to accept MSC1's POST")
        rows = wait_for(lambda: [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#readings tbody tr")
                                 if "pm25" in r.text], 30, "the first readings in the commissioning view")
        assert "MSC1-a pm25 0.2 " in rows[0]  # raw as sent (airrohr SDS_P2)
        pressure = next(r.text for r in driver.find_elements(By.CSS_SELECTOR, "#readings tbody tr")
                        if "pressure" in r.text)
        assert "100613.25 Pa" in pressure and "1006.1325 hPa" in pressure  # raw in Pa, normalised in hPa
        assert _text(driver, "verdict") in ("PASS", "WARN")
        shoot(driver, "commissioning-readings")
        driver.get(f"{base}/console/sensors/MSC1")
        shoot(driver, "sensor")
        sign_out(driver)
        wait_for(lambda: driver.find_element(By.ID, "sign-in"), 20, "the sign-in page after signing out")


def _seed_evidence(database_url: str) -> int:
    async def seed() -> int:
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            alert_id, _ = await seed_alert(conn)
            end = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
            for hours in range(72):
                t = end - timedelta(hours=hours)
                value = 41.5 if hours < 4 else 20 + (hours % 9)
                await conn.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, "
                                   "value, unit, coverage, samples, valid) VALUES ('KEN', 'pm25', '24h', %s, %s, "
                                   "%s, 'µg/m³', 0.92, 22, true)", (t - timedelta(hours=24), t, value))
            return alert_id

    return asyncio.run(seed())


def _episode_alert(database_url: str) -> int:
    """The alert the PM2.5 episode at Kennedy raises at KEN (tests/e2e/alert_harness.py: the simulated city through
    the real write path and stage jobs; 24 h of history, then hour by hour until hour 31)."""
    async def run() -> int:
        async with AlertHarness(database_url, test_rules()) as harness:
            await harness.warm_up(24)
            await harness.advance(7)
            rows = harness.query("SELECT id FROM alerts WHERE scope_key = 'KEN' AND rule = 'pm25-24h-levels'")
        assert rows, "the PM2.5 episode raised no alert at KEN"
        return int(rows[0][0])

    return asyncio.run(run())


def test_officer_acknowledges_an_alert_raised_by_the_pm25_episode_and_aqnet_alerts_show_has_it(
        database_url: str) -> None:
    asyncio.run(make_users(database_url))
    alert_id = _episode_alert(database_url)
    with psycopg.connect(database_url) as conn:
        evidence_end = conn.execute("SELECT period_end FROM alerts WHERE id = %s", (alert_id,)).fetchone()[0]
    with console_server(database_url) as base, chromium() as driver:
        sign_in(driver, base, "ana-officer", PASSWORD)
        wait_for(lambda: driver.find_element(By.ID, "open-alerts"), 20, "the alert inbox")
        shoot(driver, "alerts")
        driver.find_element(By.CSS_SELECTOR, f'tr[data-alert="{alert_id}"] a').click()
        wait_for(lambda: driver.find_element(By.ID, "evidence-chart"), 20, "the alert's page")
        limit = driver.find_element(By.CSS_SELECTOR, "#evidence-chart line.limit")
        assert driver.execute_script("return arguments[0].getBoundingClientRect().width", limit) > 300
        assert "limit 38 µg/m³" in driver.find_element(By.CSS_SELECTOR, "#evidence-chart text.limit-label").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#evidence-chart circle.point")) >= 7  # hours 24..31
        shoot(driver, "alert")
        driver.find_element(By.ID, "ack-note").send_keys("crew on the way")
        driver.find_element(By.ID, "acknowledge").click()
        wait_for(lambda: _text(driver, "alert-state") == "acknowledged", 20, "the acknowledged state")
        assert _text(driver, "acked-by") == "ana-officer"
        shoot(driver, "alert-acknowledged")
        local = evidence_end.astimezone(BOGOTA)
        driver.get(f"{base}/console/series?sensor=KEN&variable=pm25&since={local - timedelta(hours=3):%Y-%m-%dT%H:%M}"
                   f"&until={local:%Y-%m-%dT%H:%M}")
        points = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#series-chart circle.point"), 20,
                          "the series chart")
        assert len(points) == 18  # 3 h of readings every 10 min
        first, last = points[7].get_attribute("data-t"), points[9].get_attribute("data-t")
        points[9].click()  # two clicks select a period (console.js), in either order; the end is exclusive
        points[7].click()
        assert driver.find_element(By.ID, "starts_at").get_attribute("value") == points[7].get_attribute(
            "data-local")
        Select(driver.find_element(By.ID, "reason")).select_by_value("local_source")
        driver.find_element(By.ID, "decision-text").send_keys("street works by the inlet")
        shoot(driver, "series")
        driver.find_element(By.ID, "decide").click()
        assert "Decision recorded" in wait_for(lambda: _text(driver, "decision-done"), 20, "the decision")
        shoot(driver, "series-decided")
    shown = _aqnet("alerts", "show", str(alert_id), "--url", database_url)
    assert "acknowledged" in shown and "ana-officer" in shown and "console" in shown and "crew on the way" in shown
    with psycopg.connect(database_url) as conn:
        decided = conn.execute("SELECT actor, via, action, reason, time_from, time_to FROM validation_decisions"
                               ).fetchall()
    assert decided == [("ana-officer", "console", "invalidate", "local_source", datetime.fromisoformat(first),
                        datetime.fromisoformat(last) + timedelta(minutes=1))]


def test_reader_cannot_reach_officers_pages(database_url: str) -> None:
    asyncio.run(make_users(database_url))
    alert_id = _seed_evidence(database_url)
    with console_server(database_url) as base, chromium() as driver:
        sign_in(driver, base, "ana-reader", PASSWORD)
        wait_for(lambda: driver.find_element(By.ID, "sensor-list"), 20, "the sensor list")
        assert not driver.find_elements(By.LINK_TEXT, "Alerts")  # not offered in the navigation
        assert not driver.find_elements(By.ID, "register-link")
        for path in ("/console/alerts", f"/console/alerts/{alert_id}", "/console/series?sensor=KEN&variable=pm25",
                     "/console/users", "/console/sensors/new"):
            driver.get(f"{base}{path}")
            assert "Your role does not allow this page" in driver.find_element(By.TAG_NAME, "h1").text, path
        shoot(driver, "forbidden")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT state FROM alerts WHERE id = %s", (alert_id,)).fetchone() == ("firing",)


def test_a_form_sent_without_its_csrf_token_is_refused(database_url: str) -> None:
    asyncio.run(make_users(database_url))
    with console_server(database_url) as base, chromium() as driver:
        sign_in(driver, base, "ana-technician", PASSWORD)
        wait_for(lambda: driver.find_element(By.ID, "sensor-list"), 20, "the sensor list")
        driver.get(f"{base}/console/sensors/new")
        for element_id, value in {"f-sensor_id": "MSC2", "f-name": "No token", "f-lat": "4.6", "f-lon": "-74.1",
                                  "f-device_id": "MSC2-a", "f-profile": "airrohr", "f-variables": "pm25"}.items():
            driver.find_element(By.ID, element_id).send_keys(value)
        driver.execute_script("document.querySelector('#register-form input[name=csrf]').remove()")
        driver.find_element(By.ID, "register-submit").click()
        wait_for(lambda: "did not come from this console" in driver.find_element(By.TAG_NAME, "h1").text, 20,
                 "the refusal")
        shoot(driver, "csrf-refused")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sensors WHERE id = 'MSC2'").fetchone() == (0,)


def test_five_wrong_passwords_lock_the_account(database_url: str) -> None:
    asyncio.run(make_users(database_url))
    with console_server(database_url) as base, chromium() as driver:
        for attempt in range(4):
            sign_in(driver, base, "ana-admin", f"not the password {attempt}")
            message = wait_for(lambda: _text(driver, "login-message"), 20, "the sign-in answer")
            assert message == "Wrong user name or password."
        sign_in(driver, base, "ana-admin", "not the password 5")
        assert "locked" in wait_for(lambda: _text(driver, "login-message"), 20, "the lockout")
        sign_in(driver, base, "ana-admin", PASSWORD)
        assert "locked" in wait_for(lambda: _text(driver, "login-message"), 20, "the lockout, right password")
        shoot(driver, "locked")
        sign_in(driver, base, "ana-technician", PASSWORD)  # another account is not affected
        wait_for(lambda: driver.find_element(By.ID, "sensor-list"), 20, "the technician's sensor list")
    assert "locked until" in _aqnet("users", "list", "--url", database_url)


def test_admin_adds_a_user_who_signs_in_with_the_password_shown_once(database_url: str) -> None:
    asyncio.run(make_users(database_url))
    with console_server(database_url) as base, chromium() as driver:
        sign_in(driver, base, "ana-admin", PASSWORD)
        wait_for(lambda: driver.find_element(By.ID, "sensor-list"), 20, "the sensor list")
        driver.find_element(By.LINK_TEXT, "Users").click()
        rows = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#users tbody tr"), 20, "the users")
        assert [r.get_attribute("data-user") for r in rows] == ["ana-admin", "ana-officer", "ana-reader",
                                                                "ana-technician"]
        driver.find_element(By.ID, "new-username").send_keys("luis")
        Select(driver.find_element(By.ID, "new-role")).select_by_visible_text("officer")
        driver.find_element(By.ID, "add-user-submit").click()
        password = wait_for(lambda: _text(driver, "issued-password"), 20, "the new user's password")
        shoot(driver, "users")
        driver.find_element(By.CSS_SELECTOR, 'tr[data-user="ana-reader"] button[aria-label="Disable ana-reader"]'
                            ).click()
        wait_for(lambda: "disabled" in _text(driver, "users-message"), 20, "the disabled reader")
        sign_out(driver)
        sign_in(driver, base, "luis", password)
        wait_for(lambda: driver.find_element(By.ID, "open-alerts"), 20, "the new officer's inbox")
        sign_out(driver)
        sign_in(driver, base, "ana-reader", PASSWORD)
        assert wait_for(lambda: _text(driver, "login-message"), 20, "the refusal") == "Wrong user name or password."
    assert "disabled" in _aqnet("users", "list", "--url", database_url).split("ana-reader")[1].splitlines()[0]
