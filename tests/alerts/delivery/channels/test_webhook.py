"""alerts.delivery.channels.webhook against a real HTTP receiver: signed body, headers, transient vs permanent
failures."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest

from alerts.delivery.channels.webhook import WebhookChannel
from alerts.delivery.notice import Channel, DeliveryError
from aqnet.localstack import free_port
from tests.alerts.delivery.test_messages import notice
from tests.fixtures.receivers import WebhookReceiver, webhook_receiver  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
KEY = b"webhook-test-key"


@pytest.fixture
async def channel(webhook_receiver: WebhookReceiver) -> AsyncIterator[WebhookChannel]:  # noqa: F811
    ch = WebhookChannel("hooks", webhook_receiver.url, key=KEY, timeout_s=2.0, language="es",
                        headers={"Authorization": "Bearer abc", "X-Aqnet-Signature": "forged"})
    yield ch
    await ch.close()


async def test_posts_signed_json_with_the_rendered_message(channel: WebhookChannel,
                                                           webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    assert isinstance(channel, Channel) and channel.type == "webhook"
    await channel.send(notice())
    [req] = await webhook_receiver.wait_for(1)
    assert req.method == "POST" and req.path == "/hook"
    # a receiver verifies the signature by recomputing the HMAC over the raw body it received
    expected = "sha256=" + hmac.new(KEY, req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-aqnet-signature"], expected)
    assert req.headers["x-aqnet-event"] == "raised"
    assert req.headers["x-aqnet-delivery"] == "aqnet-12-40"
    assert req.headers["authorization"] == "Bearer abc"  # configured headers are sent, but cannot forge ours
    assert req.headers["content-type"].startswith("application/json")
    body = json.loads(req.body.decode("utf-8"))
    assert body["schema"] == "aqnet.alert/1" and body["alert_id"] == 12 and body["unit"] == "µg/m³"
    assert body["language"] == "es"
    assert body["message"]["subject"].startswith("[aqnet] Activada: PM2.5")
    assert "62.3 µg/m³" in body["message"]["text"]


async def test_english_channel(webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    ch = WebhookChannel("en", webhook_receiver.url, key=KEY, language="en")
    try:
        await ch.send(notice(transition="escalated", level="alert", from_level="prevention", event_id=41))
    finally:
        await ch.close()
    [req] = await webhook_receiver.wait_for(1)
    assert req.headers["x-aqnet-event"] == "escalated" and req.headers["x-aqnet-delivery"] == "aqnet-12-41"
    assert req.json()["message"]["subject"].startswith("[aqnet] Escalated:")


@pytest.mark.parametrize("status", [503, 500, 429, 408])
async def test_server_errors_are_transient(channel: WebhookChannel, webhook_receiver: WebhookReceiver,  # noqa: F811
                                           status: int) -> None:
    webhook_receiver.fail_next(1, status)
    with pytest.raises(DeliveryError, match=f"HTTP {status}.*will retry") as err:
        await channel.send(notice())
    assert not err.value.permanent
    await channel.send(notice())  # the retry goes through, with the same idempotency key
    first, second = await webhook_receiver.wait_for(2)
    assert first.headers["x-aqnet-delivery"] == second.headers["x-aqnet-delivery"]
    assert first.body == second.body


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
async def test_client_errors_are_permanent(channel: WebhookChannel, webhook_receiver: WebhookReceiver,  # noqa: F811
                                           status: int) -> None:
    webhook_receiver.fail_next(1, status)
    with pytest.raises(DeliveryError, match=f"webhook hooks \\(http://127.0.0.1:\\d+/hook\\): HTTP {status}") as err:
        await channel.send(notice())
    assert err.value.permanent


async def test_timeout_is_transient(webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    ch = WebhookChannel("slow", webhook_receiver.url, key=KEY, timeout_s=0.3)
    webhook_receiver.delay_next(1, 5.0)
    try:
        with pytest.raises(DeliveryError, match="no answer within 0.3 s") as err:
            await ch.send(notice())
    finally:
        await ch.close()
    assert not err.value.permanent


async def test_connection_refused_is_transient() -> None:
    ch = WebhookChannel("down", f"http://127.0.0.1:{free_port()}/hook", key=KEY, timeout_s=2.0)
    try:
        with pytest.raises(DeliveryError, match="ConnectError.*will retry") as err:
            await ch.send(notice())
    finally:
        await ch.close()
    assert not err.value.permanent


def test_bad_configuration_refused() -> None:
    with pytest.raises(ValueError, match="webhook channel x: url"):
        WebhookChannel("x", "ftp://host/", key=KEY)
    with pytest.raises(ValueError, match="signing key"):
        WebhookChannel("x", "http://host/", key=b"")
