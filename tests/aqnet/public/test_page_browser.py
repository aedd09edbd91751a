"""The public air-quality page in a real browser (headless Debian Chromium, Selenium through /usr/bin/chromedriver)
against the public listener over real TimescaleDB holding a simulated city (the alert-delivery harness: three
reference stations and one microsensor through the real write path and stage jobs, so the indices are the index
job's own): a citizen sees every location coloured by its current category, named in text; a microsensor is
marked indicative; a location's last 24 h appear as a chart; US AQI is a toggle; the page fits a 360-px phone;
validated and provisional values are told apart; axe-core (vendored, tests/vendor/axe-core) finds no serious or
critical violation. Screenshots at 1280 and 360 px go to var/test-output/screenshots/ (browser.shoot)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from aqnet.config import PublicSettings
from aqnet.public.scales import page_words, scales
from ingest.validation import Period, Scope
from sensors.network import bundled_network
from storage.registry import upsert_registry
from storage.validation import decide
from tests.aqnet.console.browser import chromium, shoot, wait_for
from tests.aqnet.public.public_server import public_server
from tests.e2e.alert_harness import AlertHarness, test_rules

pytestmark = pytest.mark.integration

AXE = Path(__file__).resolve().parents[2] / "vendor" / "axe-core" / "axe.min.js"
STATIONS = ("KEN", "CSE", "USQ", "MS01")  #: three reference stations and a microsensor of the bundled network
VALIDATED = "CSE"  #: its PM2.5 hours are validated by a technician: its index is no longer provisional
HOURS = 30  #: simulated hours: a full last 24 h behind every chart, and the NowCast's 12 h behind every index


async def _seed(database_url: str) -> datetime:
    """The simulated city up to hour HOURS; CSE's PM2.5 validated over all of it. The stepped clock's now."""
    async with AlertHarness(database_url, test_rules(), stations=STATIONS) as harness:
        await harness.warm_up(HOURS - 1)
        await harness.advance(1)
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            await decide(conn, "validate", scope=Scope(VALIDATED, None, "pm25"),
                         period=Period(harness.end_of(0), harness.end_of(HOURS)), actor="tec-ana",
                         role="technician", via="api", now=harness.now)
        return harness.now


def _api(base: str, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}{path}", params={"limit": 1000, **params}, timeout=60)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["results"])


def _markers(driver: WebDriver) -> dict[str, Any]:
    return {m.get_attribute("data-location"): m for m in driver.find_elements(By.CSS_SELECTOR, "#map a.marker")}


def _label(marker: Any) -> str:
    """A marker's accessible name: its text (the code shown beside it, then the rest for screen readers)."""
    return " ".join(str(marker.get_attribute("textContent")).split())


def _axe(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page now shown."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(120)
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));")
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def test_a_citizen_sees_every_location_coloured_by_its_category(database_url: str) -> None:
    now = asyncio.run(_seed(database_url))
    words, named = page_words("es"), scales("es")
    with public_server(database_url, clock=lambda: now, language="es") as base, chromium() as driver:
        locations = {loc["id"]: loc for loc in _api(base, "/v1/locations")}
        iboca = {v["locationsId"]: v for v in _api(base, "/v1/indices/latest", index="iboca")}
        aqi = {v["locationsId"]: v for v in _api(base, "/v1/indices/latest", index="us_aqi")}
        assert set(locations) == set(STATIONS) and set(iboca) == set(STATIONS) == set(aqi), (iboca, aqi)

        driver.get(f"{base}/")
        wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 30,
                 "the page to read the API")
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
        markers = _markers(driver)
        assert set(markers) == set(STATIONS)
        for sensor_id, marker in markers.items():
            category = named["iboca"]["categories"][iboca[sensor_id]["level"] - 1]
            label = _label(marker)
            assert category["name"] in label and f"IBOCA {round(iboca[sensor_id]['value'])}" in label, label
            assert iboca[sensor_id]["parameter"]["displayName"] in label, label
            shape = marker.find_element(By.CSS_SELECTOR, "rect" if locations[sensor_id]["indicative"] else
                                        "circle:not(.hit)")
            assert shape.get_attribute("fill").upper() == category["colour"].upper()
        # the microsensor is marked indicative, on the map and in the list; the stations are not
        assert locations["MS01"]["indicative"] and not locations["KEN"]["indicative"]
        assert words["indicative"] in _label(markers["MS01"])
        assert markers["MS01"].get_attribute("data-indicative") == "true"
        assert words["station"] in _label(markers["KEN"])
        items = {a.get_attribute("data-location"): a for a in
                 driver.find_elements(By.CSS_SELECTOR, "#location-list a.location")}
        assert set(items) == set(STATIONS)
        assert words["indicative_short"] in items["MS01"].text and words["indicative_short"] not in items["KEN"].text
        # validated values are told from provisional ones
        assert words["validated"] in items[VALIDATED].text, items[VALIDATED].text
        assert words["provisional"] in items["KEN"].text, items["KEN"].text
        shoot(driver, "public-page")
        assert not _axe(driver), _axe(driver)

        # a station's last 24 h: one point per hourly average the API holds, the dominant pollutant's
        _markers(driver)["KEN"].click()
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#detail figure.chart svg"), 30, "KEN's chart")
        assert driver.find_element(By.ID, "detail-heading").text == locations["KEN"]["name"]
        parameter = iboca["KEN"]["parameter"]["id"]
        hours = _api(base, f"/v1/locations/KEN/parameters/{parameter}/hours")
        assert len(hours) == 24
        points = driver.find_elements(By.CSS_SELECTOR, "#detail figure.chart circle.point")
        assert len(points) == len([h for h in hours if h["value"] is not None]) == 24
        line = driver.find_element(By.CSS_SELECTOR, "#detail figure.chart path.line").get_attribute("d")
        assert line.count("M") == 1 and line.count("L") == 23  # one unbroken line through the 24 hours
        title = driver.find_element(By.CSS_SELECTOR, "#detail figure.chart svg title").get_attribute("textContent")
        assert locations["KEN"]["name"] in title
        rows = driver.find_elements(By.CSS_SELECTOR, "#detail figure.chart tbody tr")
        assert len(rows) == 24  # the chart's text alternative: the same values in a table
        shoot(driver, "public-page-station")
        assert not _axe(driver), _axe(driver)

        # US AQI as the option: every marker named by its US AQI category
        driver.find_element(By.CSS_SELECTOR, "input[name=index][value=us_aqi]").click()
        wait_for(lambda: "US AQI" in _label(_markers(driver)["KEN"]), 10, "US AQI markers")
        for sensor_id, marker in _markers(driver).items():
            category = named["us_aqi"]["categories"][aqi[sensor_id]["level"] - 1]
            assert category["name"] in _label(marker)

        # by keyboard: Enter on a location of the list opens it, and the focus moves to its view
        driver.find_element(By.CSS_SELECTOR, "#location-list a[data-location=USQ]").send_keys(Keys.ENTER)
        wait_for(lambda: driver.find_element(By.ID, "detail-heading").text == locations["USQ"]["name"], 10,
                 "USQ's view")
        assert driver.switch_to.active_element.get_attribute("id") == "detail"
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#detail figure.chart svg"), 30, "USQ's chart")

        # a 360-px phone: nothing wider than the screen, every location still on the map and in the list
        driver.set_window_size(360, 740)
        driver.get(f"{base}/#loc-MS01")
        driver.refresh()  # a fresh load that opens on the location named in the address
        wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 30,
                 "the page on a phone")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#detail figure.chart svg"), 30, "MS01's chart")
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 360
        assert set(_markers(driver)) == set(STATIONS)
        assert driver.find_element(By.ID, "detail-heading").text == locations["MS01"]["name"]
        assert not _axe(driver), _axe(driver)


#: a 1×1 grey PNG: what the test's tile server answers for every tile
TILE_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGO4DwAA2gDZ7tDbTwAAAABJ"
                            "RU5ErkJggg==")


@contextmanager
def tile_server() -> Iterator[tuple[str, list[str]]]:
    """A tile server on 127.0.0.1 answering TILE_PNG for any path; yields its XYZ template and the paths asked."""
    asked: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(TILE_PNG)))
            self.end_headers()
            self.wfile.write(TILE_PNG)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png", asked
    finally:
        server.shutdown()
        thread.join(10)


async def _register_network(database_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open(wait=True, timeout=30)
    try:
        await upsert_registry(pool, bundled_network())
    finally:
        await pool.close()


def test_tiles_from_the_configured_server_and_locations_without_an_index(database_url: str) -> None:
    asyncio.run(_register_network(database_url))  # the whole network, before any reading
    words = page_words("en")
    with tile_server() as (template, asked):
        # pages of at most 10: the page follows meta.next through the 44 locations
        settings = PublicSettings(requests_per_minute=100_000, tile_url=template, tile_attribution="© Test tiles",
                                  max_limit=10)
        with public_server(database_url, public=settings, language="en") as base, chromium() as driver:
            driver.get(f"{base}/")
            wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 30,
                     "the page to read the API")
            markers = _markers(driver)
            assert len(markers) == len(bundled_network())
            outside = driver.execute_script(
                "const box = document.querySelector('.map-canvas').getBoundingClientRect();"
                "return [...document.querySelectorAll('#map a.marker')].filter(m => {"
                " const r = m.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;"
                " return x < box.left || x > box.right || y < box.top || y > box.bottom;"
                "}).map(m => m.dataset.location);")
            assert outside == [], f"markers outside the map: {outside}"
            for marker in markers.values():  # no index yet: said in words, not by a grey alone
                assert words["no_index"] in _label(marker)
            tiles = driver.find_elements(By.CSS_SELECTOR, "#map image.tile")
            assert tiles
            wait_for(lambda: len(asked) >= len(tiles), 20, "the browser to fetch the tiles")
            z = {path.split("/")[1] for path in asked}
            assert len(z) == 1 and 1 <= int(z.pop()) <= 17, asked
            assert "© Test tiles" in driver.find_element(By.CSS_SELECTOR, ".attribution").text
            shoot(driver, "public-page-tiles")
            assert not _axe(driver), _axe(driver)
