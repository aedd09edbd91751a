"""The web console's doors against a real TimescaleDB, through the real API app (in-process ASGI, https so the
Secure cookie travels): sign-in with argon2 hashes and the lockout after five wrong passwords, the CSRF check of
every form (sign-in included), the role checks shared with the API (a reader cannot reach officers' pages), and
an officer's acknowledgement recorded as the API's and shown by `aqnet alerts show`."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.console import console_router
from aqnet.http import Authenticator, create_api_app
from storage.users import add_user
from tests.aqnet.api.test_alerts import seed_alert

PASSWORD = "correct horse battery"  # a test account's
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


async def make_users(database_url: str) -> None:
    """One user per role, each with PASSWORD."""
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        for role in ("technician", "officer", "reader", "admin"):
            await add_user(conn, username=f"ana-{role}", role=role, password=PASSWORD, created_by="pytest")


async def aqnet(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `aqnet` command line (off the event loop)."""
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "aqnet", *args], input=stdin,
                                   capture_output=True, text=True, timeout=60)


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Fetch the sign-in form (its double-submit cookie and token) and send it."""
    form = await client.get("/console/login")
    assert form.status_code == 200
    return await client.post("/console/login", data={"csrf": csrf_of(form.text), "username": username,
                                                     "password": password})


async def test_sign_in_sets_a_secure_http_only_strict_cookie_and_opens_the_console(console: Any) -> None:
    answer = await sign_in(console, "ana-technician")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("aqnet_session="))
    assert all(part in cookie.lower() for part in ("httponly", "secure", "samesite=strict", "path=/console"))
    page = await console.get("/console/sensors")
    assert page.status_code == 200 and "ana-technician" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_five_wrong_passwords_lock_the_account(console: Any, database_url: str) -> None:
    for attempt in range(4):
        wrong = await sign_in(console, "ana-officer", f"wrong password {attempt}")
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    fifth = await sign_in(console, "ana-officer", "wrong password 5")
    assert fifth.status_code == 423 and "locked" in fifth.text
    right = await sign_in(console, "ana-officer")  # the right password no longer opens it
    assert right.status_code == 423 and "aqnet_session" not in right.headers.get("set-cookie", "")
    listed = (await aqnet("users", "list", "--url", database_url)).stdout
    assert re.search(r"ana-officer\s+officer\s+locked until", listed), listed
    reset = await aqnet("users", "reset-password", "ana-officer", "--password-file", "-", "--url", database_url,
                        stdin=PASSWORD + "\n")
    assert reset.returncode == 0, reset.stderr
    assert (await sign_in(console, "ana-officer")).status_code == 303


async def test_an_unknown_user_gets_the_wrong_password_answer(console: Any) -> None:
    answer = await sign_in(console, "nobody", "whatever it is")
    assert answer.status_code == 401 and "Wrong user name or password" in answer.text


async def test_a_form_without_its_csrf_token_is_refused(console: Any, database_url: str) -> None:
    form = await console.get("/console/login")
    refused = await console.post("/console/login", data={"username": "ana-technician", "password": PASSWORD})
    assert refused.status_code == 403 and "aqnet_session" not in refused.headers.get("set-cookie", "")
    forged = await console.post("/console/login", data={"csrf": "x" * 43, "username": "ana-technician",
                                                        "password": PASSWORD})
    assert forged.status_code == 403
    assert csrf_of(form.text)
    assert (await sign_in(console, "ana-technician")).status_code == 303
    fields = {"sensor_id": "MSX1", "name": "New kit", "kind": "microsensor", "lat": "4.6", "lon": "-74.1",
              "device_id": "MSX1-a", "protocol": "http", "profile": "airrohr", "variables": "pm25 pm10"}
    for data in (fields, {**fields, "csrf": "not-the-token"}):
        refused = await console.post("/console/sensors/new", data=data)
        assert refused.status_code == 403 and "did not come from this console" in refused.text
    async with await AsyncConnection.connect(database_url) as conn:
        assert await (await conn.execute("SELECT count(*) FROM sensors WHERE id = 'MSX1'")).fetchone() == (0,)
    page = await console.get("/console/sensors/new")
    done = await console.post("/console/sensors/new", data={**fields, "csrf": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/console/sensors/MSX1"


async def test_a_reader_cannot_reach_officers_pages(console: Any, database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        alert_id, _ = await seed_alert(conn)
    assert (await sign_in(console, "ana-reader")).status_code == 303
    for path in ("/console/alerts", f"/console/alerts/{alert_id}", "/console/series?sensor=KEN&variable=pm25"):
        page = await console.get(path)
        assert page.status_code == 403 and "Your role does not allow this page" in page.text, path
    sensors = await console.get("/console/sensors")
    csrf = csrf_of(sensors.text)  # the reader's own session token: the role check refuses, not the CSRF check
    posted = await console.post(f"/console/alerts/{alert_id}/ack", data={"csrf": csrf, "note": "me too"})
    assert posted.status_code == 403 and "has role reader; this needs officer" in posted.text
    async with await AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT state FROM alerts WHERE id = %s", (alert_id,))).fetchone()
    assert row == ("firing",)


async def test_signed_out_pages_redirect_to_sign_in(console: Any) -> None:
    page = await console.get("/console/alerts")
    assert page.status_code == 303 and page.headers["location"] == "/console/login?next=%2Fconsole%2Falerts"


async def test_an_officers_acknowledgement_shows_in_aqnet_alerts_show(console: Any, database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        alert_id, _ = await seed_alert(conn)
    assert (await sign_in(console, "ana-officer")).status_code == 303
    inbox = await console.get("/console/alerts")
    assert inbox.status_code == 200 and f'data-alert="{alert_id}"' in inbox.text
    page = await console.get(f"/console/alerts/{alert_id}")
    assert page.status_code == 200 and 'class="limit"' in page.text  # the evidence chart draws the limit
    done = await console.post(f"/console/alerts/{alert_id}/ack", data={"csrf": csrf_of(page.text),
                                                                        "note": "crew on the way"})
    assert done.status_code == 303
    again = await console.post(f"/console/alerts/{alert_id}/ack", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "already acknowledged" in again.text
    shown = (await aqnet("alerts", "show", str(alert_id), "--url", database_url)).stdout
    assert "acknowledged" in shown and "ana-officer" in shown and "crew on the way" in shown, shown


async def test_wrong_passwords_from_one_address_over_many_accounts_are_throttled(database_url: str) -> None:
    await make_users(database_url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True, timeout=30)
    auth = Authenticator(pool, auth_failures_per_minute=3)
    app = create_api_app(api_router(pool, auth=auth), console_router(pool, database_url, language="en", auth=auth))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://aqnet") as client:
            for name in ("ana-reader", "ana-officer", "ana-admin"):  # one wrong password each: no account locks
                assert (await sign_in(client, name, "spray 2026!")).status_code == 401
            limited = await sign_in(client, "ana-technician")  # even the right password, from this address
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
            assert "Too many failed sign-ins from this address" in limited.text
            token = await client.get("/api/v1/sensors", headers={"Authorization": "Bearer aqn_x"})
            assert token.status_code == 429  # one limit for the listener's tokens and passwords
    finally:
        await pool.close()
