"""Test helpers for the web console's browser tests: headless Debian Chromium driven by Selenium through
/usr/bin/chromedriver (never a driver Selenium Manager would download), screenshots of every page at desktop
(1280 px) and phone (360 px) widths into var/test-output/screenshots/, the API app with the console served by
uvicorn in a thread on a free port, and the real daemon as a subprocess (for readings arriving through its
intake)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import yaml
from psycopg_pool import AsyncConnectionPool
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from aqnet.api import api_router
from aqnet.config import ListenerSettings
from aqnet.console import console_router
from aqnet.http import create_api_app
from aqnet.localstack import free_port
from storage.users import LockoutPolicy
from tests.fixtures.app_thread import AppThread
from tests.fixtures.listeners import alert_keys_in, http_listeners

CHROMEDRIVER = Path("/usr/bin/chromedriver")  #: Debian's chromium-driver (deploy/install-system.sh installs it)
SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "test-output" / "screenshots"
SIZES = {"desktop": (1280, 900), "phone": (360, 740)}


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium (Debian's) driven through /usr/bin/chromedriver; quit afterwards."""
    assert CHROMEDRIVER.exists(), ("no /usr/bin/chromedriver: install Debian's chromium and chromium-driver "
                                   "(`make system` runs deploy/install-system.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.implicitly_wait(0)
        yield driver
    finally:
        driver.quit()


def shoot(driver: WebDriver, name: str) -> list[Path]:
    """Save the page now shown at each width in SIZES (full height) as `<name>-<size>.png`; the paths."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for size, (width, height) in SIZES.items():
        driver.set_window_size(width, height)
        full = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(width, max(height, min(full + 120, 6000)))
        path = SCREENSHOTS / f"{name}-{size}.png"
        driver.save_screenshot(str(path))
        saved.append(path)
    driver.set_window_size(*SIZES["desktop"])
    return saved


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `predicate` until it answers something true; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = predicate()
        except Exception:  # the page is being replaced: look again
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.3)


def sign_in(driver: WebDriver, base: str, username: str, password: str) -> None:
    """Fill and send the sign-in form."""
    driver.get(f"{base}/console/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()


def sign_out(driver: WebDriver) -> None:
    """Press the header's sign-out button."""
    driver.find_element(By.CSS_SELECTOR, "form.signout button").click()


def _console_app(database_url: str, port: int) -> Callable[[], AbstractAsyncContextManager[tuple[Any, Any]]]:
    """The API app with the console, on its own pool (closed after the server stops)."""

    @asynccontextmanager
    async def build() -> AsyncIterator[tuple[Any, Any]]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)
        await pool.open(wait=True, timeout=30)
        try:
            yield (create_api_app(api_router(pool), console_router(pool, database_url, language="en",
                                                                   policy=LockoutPolicy(5, 900))),
                   ListenerSettings(port=port))
        finally:
            await pool.close()

    return build


@contextmanager
def console_server(database_url: str) -> Iterator[str]:
    """The API app with the console on 127.0.0.1:<free port> in a thread; yields its base URL."""
    port = free_port()
    thread = AppThread("console-server", port, _console_app(database_url, port))
    thread.start()
    assert thread.ready.wait(30), "the console's listener did not start within 30 s"
    if thread.error is not None:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.stop()
        thread.join(15)
        assert not thread.is_alive(), "the console's listener did not stop within 15 s"


@contextmanager
def daemon(tmp_path: Path, database_url: str, mqtt_url: str) -> Iterator[dict[str, str]]:
    """`aqnet run` (the bundled network, no simulators) with the console in English; yields its URLs."""
    internal, intake, api = free_port(), free_port(), free_port()
    cfg = {"database": {"url": database_url, "pool_max_size": 3},
           "mqtt": {"url": mqtt_url, "client_id": f"aqnet-{tmp_path.name}"},
           "ingest": {"batch_max_age_s": 0.2},
           "http": http_listeners(internal, intake=intake, api=api),
           "storage": {"spool_dir": str(tmp_path / "spool")}, "alerts": alert_keys_in(tmp_path),
           "console": {"language": "en"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(tmp_path / "run.yaml")],
                            stdout=log, stderr=log)
    try:
        wait_for(lambda: subprocess.run(["curl", "-sf", f"http://127.0.0.1:{internal}/healthz"],
                                        capture_output=True).returncode == 0, 60, "the daemon's HTTP server")
        yield {"api": f"http://127.0.0.1:{api}", "intake": f"http://127.0.0.1:{intake}",
               "log": str(tmp_path / "daemon.log")}
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        log.close()
        assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]


def as_json(text: str) -> Any:
    """JSON of a page's body text (Chromium shows a JSON answer as text)."""
    return json.loads(text)
