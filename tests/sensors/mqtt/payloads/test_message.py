"""sensors.mqtt.payloads (index and _message): the format tables, the value types' checks, and for every format:
any bytes on any topic → a DecodedMessage or a PayloadError with a known reason, never another exception."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.mqtt.payloads import (
    FORMATS,
    PAYLOAD_ERROR_REASONS,
    TOPICS,
    DecodedMessage,
    DecodedValue,
    PayloadError,
)

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
BOGOTA = ZoneInfo("America/Bogota")


def _value(**kw: object) -> DecodedValue:
    args: dict[str, object] = {"channel": "SDS011", "variable": "pm10", "value": 1.0, "unit": "µg/m³", "time": NOW,
                               "time_source": "received", "conditions": "local"}
    args.update(kw)
    return DecodedValue(**args)  # type: ignore[arg-type]


def test_tables() -> None:
    assert set(FORMATS) == set(TOPICS) == {"aqnet-json", "airrohr", "purpleair"}
    assert TOPICS["aqnet-json"].format(sensor_id="MS01") == "aqnet/MS01/readings"
    with pytest.raises(TypeError):
        FORMATS["x"] = FORMATS["airrohr"]  # type: ignore[index]
    assert PAYLOAD_ERROR_REASONS == ("not_json", "schema", "bad_time", "unknown_variable", "bad_value",
                                     "too_large", "no_identity")


def test_payload_error_fields() -> None:
    err = PayloadError("airrohr/1/data", "no_identity", "no esp8266id")
    assert (err.topic, err.reason, err.detail) == ("airrohr/1/data", "no_identity", "no esp8266id")
    assert str(err) == "airrohr/1/data: no esp8266id"
    assert isinstance(err, ValueError)


def test_decoded_value_is_frozen_and_checked() -> None:
    v = _value()
    with pytest.raises(FrozenInstanceError):
        v.value = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="variable"):
        _value(variable="pm2_5")
    with pytest.raises(ValueError, match="aware"):
        _value(time=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="finite"):
        _value(value=float("nan"))
    with pytest.raises(ValueError, match="time_source"):
        _value(time_source="guessed")


def test_decoded_message() -> None:
    assert DecodedMessage("12345", (_value(),)).values[0].channel == "SDS011"
    assert DecodedMessage(None, ()).hardware_id is None
    with pytest.raises(ValueError):
        DecodedMessage("", ())


_FUZZ = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=300)


@_FUZZ
@given(st.sampled_from(sorted(FORMATS)), st.text(max_size=30), st.binary(max_size=200))
def test_fuzz_every_format_with_any_bytes(fmt: str, topic: str, payload: bytes) -> None:
    try:
        message = FORMATS[fmt](topic, payload, now=NOW, tz=BOGOTA)
    except PayloadError as exc:
        assert exc.reason in PAYLOAD_ERROR_REASONS
        assert exc.topic == topic
        return
    assert isinstance(message, DecodedMessage)
    assert all(isinstance(v, DecodedValue) for v in message.values)
