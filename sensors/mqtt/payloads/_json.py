"""Bytes → JSON object and JSON value → finite float for the payload decoders, raising PayloadError. Pure.

Shared by every JSON format so that they bound the parsing cost and word their rejections alike.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sensors.mqtt.payloads._message import PayloadError

__all__ = ["MAX_PAYLOAD_BYTES", "load_object", "number", "short"]

#: largest accepted payload (aqnet convention): a real message is a few hundred bytes (a PurpleAir /json about
#: 1.5 KiB); bounds the parsing cost
MAX_PAYLOAD_BYTES = 64 * 1024

#: a decimal number as firmware prints it ("12.30", "-94", "100613.25", "1e3"); Python's float() would also take
#: "nan", "inf" and "1_000", which are not numbers on the wire
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def short(value: Any) -> str:
    """`repr(value)` cut to 40 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_object(topic: str, payload: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object of at most MAX_PAYLOAD_BYTES; raise PayloadError (too_large/not_json/schema)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(topic, "too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(topic, "not_json", f"payload is not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PayloadError(topic, "schema", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def number(topic: str, where: str, value: Any, *, strings: bool = False) -> float:
    """A JSON number (or, with `strings`, a decimal string) as a finite float; else PayloadError bad_value."""
    if strings and isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise PayloadError(topic, "bad_value", f"{where}: expected a decimal number, got {short(value)}")
        parsed = float(text)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(topic, "bad_value", f"{where}: expected a number, got {short(value)}")
    else:
        try:
            parsed = float(value)
        except OverflowError:  # an integer too large for a float
            raise PayloadError(topic, "bad_value", f"{where}: {short(value)} is out of range") from None
    if not math.isfinite(parsed):
        raise PayloadError(topic, "bad_value", f"{where}: expected a finite number, got {short(value)}")
    return parsed
