"""No MQTT password in an error message (issue 16): URL parsing and configuration validation."""

from __future__ import annotations

import pytest

from aqnet.config import ConfigError, settings_from_dict
from sensors.mqtt.client import parse_mqtt_url, redact_url

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize("url", [f"http://aqnet:{SECRET}@broker:1883", f"mqtt://aqnet:{SECRET}@broker:99999",
                                 f"mqtt://aqnet:{SECRET}@:1883"])
def test_a_malformed_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_mqtt_url(url)
    assert (SECRET not in str(exc.value) and "aqnet:***@broker" in str(exc.value)) or "***" in str(exc.value)


def test_config_errors_never_echo_the_password() -> None:
    with pytest.raises(ConfigError) as exc:
        settings_from_dict({"database": {"url": "postgresql://x/y"}, "mqtt": {"url": f"tcpx://aqnet:{SECRET}@b:1"}})
    assert SECRET not in str(exc.value) and "mqtt.url" in str(exc.value)


def test_redact_url() -> None:
    assert redact_url(f"mqtts://aqnet:{SECRET}@broker:8884") == "mqtts://aqnet:***@broker:8884"
    assert redact_url("mqtt://broker:1883") == "mqtt://broker:1883"


def test_a_subscriber_client_refused_at_construction_hides_the_password() -> None:
    import asyncio

    from sensors.mqtt.client import MqttSubscriberClient

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError) as exc:
            MqttSubscriberClient(f"mqtt://aqnet:{SECRET}@127.0.0.1:1883", client_id="", topics=[], loop=loop,
                                 on_message=lambda m: None)
        assert SECRET not in str(exc.value)
    finally:
        loop.close()
