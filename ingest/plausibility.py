"""Device times aqnet believes: a window around the receive time, beyond which a reading is refused. Pure.

A device clock can say anything from year 1 to 9999 (sensors.mqtt.payloads._time accepts what a datetime holds),
and every distinct day a batch touches is a hypertable chunk to create: one message with values from year 1 to
9999 would create thousands. So a reading whose device time (`time_source == "device"`) lies more than
`past_days` before aqnet's clock, or more than `future_s` after it, is refused with reason `device_time` (it
becomes a dead letter: ingest.pipeline); one inside the window but ahead of the clock by more than the QC skew
tolerance is still stored, flagged CLOCK_SKEW (ingest.qc). Receive-time readings are aqnet's own clock and always
pass. Defaults (config `ingest.device_time_past_days`, `ingest.device_time_future_s`): 30 days back (a board's
buffer after an outage, a station logger's backfill; raise it to replay older history) and one day ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.normalise import NormaliseError
from sensors.reading import RawReading

__all__ = ["DEFAULT_FUTURE_S", "DEFAULT_PAST_DAYS", "TimeWindow"]

DEFAULT_PAST_DAYS = 30.0
DEFAULT_FUTURE_S = 86_400.0


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far a device time may lie before (`past_days`) or after (`future_s`) aqnet's clock."""

    past_days: float = DEFAULT_PAST_DAYS
    future_s: float = DEFAULT_FUTURE_S

    def __post_init__(self) -> None:
        if not (self.past_days > 0 and self.future_s >= 0):
            raise ValueError(f"device time window: expected past_days > 0 and future_s >= 0, got "
                             f"{self.past_days}, {self.future_s}")

    def check(self, raw: RawReading, now: datetime) -> None:
        """Nothing when `raw`'s time is plausible at `now`; NormaliseError(reason "device_time") otherwise."""
        if raw.time_source != "device":
            return
        earliest = now - timedelta(days=self.past_days)
        latest = now + timedelta(seconds=self.future_s)
        if raw.time < earliest:
            raise NormaliseError(raw, "device_time", f"device time {raw.time.isoformat()} is more than "
                                 f"{self.past_days:g} days before the receive clock {now.isoformat()} "
                                 "(ingest.device_time_past_days)")
        if raw.time > latest:
            raise NormaliseError(raw, "device_time", f"device time {raw.time.isoformat()} is more than "
                                 f"{self.future_s:g} s after the receive clock {now.isoformat()} "
                                 "(ingest.device_time_future_s)")
