"""Issue 16: no password in any error message, log line or `/status` — the attacks of docs/security.md's "Alert
acknowledgement links and secrets" that concern printed secrets. Each failed on the tree before issue 16."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from alerts.delivery.channels.alertmanager import AlertmanagerChannel
from alerts.delivery.channels.webhook import WebhookChannel
from alerts.delivery.notice import DeliveryError
from aqnet.api import api_router
from aqnet.cli import cli
from aqnet.config import ConfigError, settings_from_dict
from aqnet.http import create_api_app
from aqnet.logs import RedactingFormatter
from sensors.mqtt.client import parse_mqtt_url
from tests.alerts.delivery.channels.test_alertmanager import make_notice

PASSWORD = "Zq-s3cret-P4ss"


def test_config_errors_do_not_echo_a_url_password() -> None:
    with pytest.raises(ConfigError) as bad:
        settings_from_dict({"database": {"url": "postgresql://x@db/aq"},
                            "mqtt": {"url": f"mqtt://aqnet-daemon:{PASSWORD}@broker:notaport"}})
    assert PASSWORD not in str(bad.value) and "mqtt://aqnet-daemon:***@broker:notaport" in str(bad.value)
    with pytest.raises(ValueError) as unparsable:
        parse_mqtt_url(f"mqtt://aqnet-daemon:{PASSWORD}@broker:99999")
    assert PASSWORD not in str(unparsable.value)


async def test_http_channel_errors_do_not_echo_a_url_password() -> None:
    with pytest.raises(ValueError) as bad_hook:
        WebhookChannel("city", f"ftp://hook:{PASSWORD}@city.example/h", key=b"k" * 32)
    assert PASSWORD not in str(bad_hook.value)
    hook = WebhookChannel("city", f"http://hook:{PASSWORD}@127.0.0.1:1/h?token={PASSWORD}", key=b"k" * 32,
                          timeout_s=5)
    manager = AlertmanagerChannel("am", f"http://am:{PASSWORD}@127.0.0.1:1", timeout_s=5)
    try:
        for channel in (hook, manager):
            with pytest.raises(DeliveryError) as refused:
                await channel.send(make_notice())
            assert PASSWORD not in str(refused.value) and "127.0.0.1:1" in str(refused.value)
    finally:
        await hook.close()
        await manager.close()


@pytest.mark.parametrize("command", [["alerts", "list"], ["tokens", "list"], ["db", "migrate"]])
def test_cli_database_errors_do_not_echo_the_password(command: list[str]) -> None:
    url = f"postgresql://aqnet:{PASSWORD}@127.0.0.1:1/aqnet?connect_timeout=2"
    failed = CliRunner().invoke(cli, [*command, "--url", url])
    assert failed.exit_code != 0 and "127.0.0.1" in failed.output, failed.output
    assert PASSWORD not in failed.output


def test_log_lines_mask_passwords_in_messages_arguments_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise psycopg.OperationalError(f'missing "=" after "postgresql://aqnet:{PASSWORD}@db" in connection info')
    except psycopg.OperationalError:
        import sys

        record = logging.LogRecord("aqnet", logging.ERROR, __file__, 1, "cannot connect to %s: password=%s",
                                   (f"mqtt://u:{PASSWORD}@b:1883", PASSWORD), sys.exc_info())
    out = formatter.format(record)
    assert PASSWORD not in out and "mqtt://u:***@b:1883" in out and "password=***" in out


class _DownPool:
    """A pool whose database is down the way libpq says it: naming host, address, port and user."""

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
        raise psycopg.OperationalError('connection to server at "db.internal" (10.1.2.3), port 5432 failed: FATAL: '
                                       'password authentication failed for user "aqnet"')
        yield  # pragma: no cover


async def test_api_503_names_no_database_host_before_authentication() -> None:
    app = create_api_app(api_router(_DownPool()))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aqnet") as client:
        got = await client.get("/api/v1/alerts", headers={"Authorization": "Bearer aqn_" + "x" * 43})
    assert got.status_code == 503
    for leak in ("db.internal", "10.1.2.3", "5432", 'aqnet"', "password"):
        assert leak not in got.text, got.text
