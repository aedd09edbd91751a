"""Device timestamps → aware datetimes for the payload decoders. Pure.

Accepted forms (issue 5):
- ISO 8601 / RFC 3339 strings with a date and a time of day ("2026-03-02T07:15:00-05:00", "…T12:15:00Z",
  "2026-03-02 07:15:00", "20260302T071500"); a date alone is refused: it is not a measurement time.
- PurpleAir's `DateTime`, "2026/05/17T22:23:04z": UTC (the "z").
- Epoch seconds or milliseconds as a JSON number. Which one is decided by magnitude: below 1e11 is seconds
  (1e11 s is the year 5138), from 1e11 to 1e14 is milliseconds (1e11 ms is March 1973); larger is refused.
  Epoch numbers are UTC by definition.
A time without an offset is a wall-clock time of the network's zone `tz` (VARIABLES.md, "Time"), never UTC.
The result keeps the offset it was written with; it must also be representable in UTC (years 1..9999).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo

from sensors.mqtt.payloads._json import short
from sensors.mqtt.payloads._message import PayloadError

__all__ = ["device_time", "parse_time"]

#: epoch values from here on are milliseconds (see the module docstring)
_EPOCH_MS_FROM = 1e11
#: epoch values from here on are refused: microseconds or garbage, not a device clock in s or ms
_EPOCH_MAX = 1e14
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: PurpleAir local JSON `DateTime`: "2026/05/17T22:23:04z" (UTC)
_PURPLEAIR = re.compile(r"(\d{4})/(\d{2})/(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})([zZ]?)")


def _from_epoch(value: float) -> datetime:
    if not math.isfinite(value):
        raise ValueError(f"epoch time must be finite, got {value!r}")
    if abs(value) >= _EPOCH_MAX:
        raise ValueError(f"epoch time {value!r} is neither seconds nor milliseconds")
    seconds = value / 1000 if abs(value) >= _EPOCH_MS_FROM else value
    # timedelta arithmetic, not fromtimestamp: no platform limits, exact for integral milliseconds
    return _EPOCH + timedelta(seconds=seconds)


def _from_text(text: str, tz: tzinfo) -> datetime:
    match = _PURPLEAIR.fullmatch(text)
    if match:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC if match.group(7) else tz)
    if not any(sep in text for sep in "Tt "):
        raise ValueError(f"expected a date and a time of day, got {short(text)}")
    if text.endswith("z"):  # RFC 3339 allows a lower-case "z"; fromisoformat does not
        text = text[:-1] + "Z"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected ISO 8601, got {short(text)}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=tz)  # a wall-clock time of the network's zone, never UTC
    return when


def parse_time(raw: object, tz: tzinfo) -> datetime:
    """An ISO 8601 / PurpleAir string or an epoch s/ms number → aware datetime; ValueError if it is not one."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a time, got {raw!r}")
    if isinstance(raw, int | float):
        try:
            when = _from_epoch(float(raw))
        except OverflowError:
            raise ValueError(f"epoch time {short(raw)} is out of range") from None
    elif isinstance(raw, str):
        when = _from_text(raw, tz)
    else:
        raise ValueError(f"expected an ISO 8601 string or epoch seconds/milliseconds, got {short(raw)}")
    try:
        when.astimezone(UTC)  # e.g. 0001-01-01T00:00+05:00 has no UTC instant a datetime can hold
    except OverflowError:
        raise ValueError(f"{short(raw)} is out of the representable range") from None
    return when


def device_time(topic: str, where: str, raw: object, tz: tzinfo) -> datetime:
    """`parse_time` for a decoder: the payload field `where` → aware datetime, or PayloadError bad_time."""
    try:
        return parse_time(raw, tz)
    except (ValueError, OverflowError) as exc:
        raise PayloadError(topic, "bad_time", f"{where}: {exc}") from None
