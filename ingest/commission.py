"""The commissioning verdict of `aqnet sensors test ID`: what reading each device of a sensor now gave, and whether
that passes. Stage 2 (ingest: judged on the readings and flags the pipeline gives); pure.

Contract of `judge(devices)`: FAIL when a device cannot be read, sends nothing, is rejected, or a reading carries a
flag that excludes it (OUT_OF_RANGE, DEVICE_INVALID, CLOCK_SKEW) or no device is registered; WARN for suspect
flags (NEGATIVE, SPIKE, FLATLINE, STALE, MAINTENANCE reported by the device), a registered variable that did not
report, and HTTP devices (shown from storage); PASS otherwise. CALIBRATED and RECEIVE_TIME are information. The
readings are gathered by `aqnet.commission.check_sensor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ingest.reading import EXCLUDED, QC, Reading

__all__ = ["FAIL_FLAGS", "WARN_FLAGS", "CommissionReport", "DeviceCheck", "DeviceStatus", "Finding", "Rejected",
           "Verdict", "flag_names", "judge"]

Verdict = Literal["PASS", "WARN", "FAIL"]
#: ok: read now; unreachable: no connection to its link or broker, or no answer in time; failed: it answered
#: without a usable value (Modbus exception, malformed frame, every value NaN); no_message: nothing on its topic
#: in time; rejected: the message it sent cannot be used; not_pullable: HTTP push (stored readings shown);
#: error: the registry entry cannot be used as it is (unknown profile, conditions missing, no broker URL)
DeviceStatus = Literal["ok", "unreachable", "failed", "no_message", "rejected", "not_pullable", "error"]

#: flags that keep a reading out of averages and alerts (ingest.reading.EXCLUDED) except MAINTENANCE, which a
#: device may report about itself while a technician works on it (a warning then)
FAIL_FLAGS = QC(EXCLUDED & ~QC.MAINTENANCE)
#: suspect but kept (VARIABLES.md, "Which readings count"), and the device's own maintenance status
WARN_FLAGS = QC.NEGATIVE | QC.SPIKE | QC.FLATLINE | QC.STALE | QC.MAINTENANCE


def flag_names(flags: QC) -> tuple[str, ...]:
    """The names of the QC bits set in `flags`, in bit order."""
    return tuple(str(f.name) for f in QC if f & flags)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A value (or a whole message) the daemon would dead-letter instead of storing."""

    variable: str  #: "" for a whole message
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class DeviceCheck:
    """What reading one device now gave."""

    device_id: str
    protocol: str
    endpoint: str  #: where it was read: "host:port unit N", "<broker> topic T", "HTTP push"
    status: DeviceStatus
    detail: str = ""
    readings: tuple[Reading, ...] = ()  #: normalised and checked, as the daemon would store them
    rejected: tuple[Rejected, ...] = ()
    missing: tuple[str, ...] = ()  #: registered variables that did not report
    stored: bool = False  #: the readings come from storage (HTTP push devices), not from a read now


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason the verdict is not PASS."""

    level: Literal["WARN", "FAIL"]
    device_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class CommissionReport:
    """The result of `aqnet sensors test ID`."""

    sensor_id: str
    name: str
    kind: str
    lifecycle: str
    checked_at: datetime
    devices: tuple[DeviceCheck, ...]
    verdict: Verdict
    findings: tuple[Finding, ...]


# ------------------------------------------------------------------------------------------------- verdict


def judge(devices: Sequence[DeviceCheck]) -> tuple[Verdict, tuple[Finding, ...]]:
    """The verdict and its reasons (see the module docstring). Pure."""
    findings: list[Finding] = []
    if not devices:
        findings.append(Finding("FAIL", None, "no active device is registered: add one with `aqnet sensors "
                                              "swap` or `aqnet sensors update`"))
    for d in devices:
        if d.status == "not_pullable":
            if d.readings:
                newest = max(r.received_at for r in d.readings)
                findings.append(Finding("WARN", d.device_id, f"{d.detail}; last stored reading received "
                                                             f"{newest.isoformat()}"))
            else:
                findings.append(Finding("FAIL", d.device_id, f"{d.detail}; nothing received from it yet"))
            continue
        if d.status != "ok":
            findings.append(Finding("FAIL", d.device_id, f"{d.status}: {d.detail}"))
        for rej in d.rejected:
            what = f"{rej.variable} " if rej.variable else ""
            findings.append(Finding("FAIL", d.device_id, f"{what}rejected ({rej.reason}): {rej.detail}"))
        for r in d.readings:
            bad = r.flags & FAIL_FLAGS
            suspect = r.flags & WARN_FLAGS
            if bad:
                findings.append(Finding("FAIL", d.device_id, f"{r.variable} = {r.raw_value:g} {r.raw_unit}: "
                                                             f"{', '.join(flag_names(bad))}"))
            elif suspect:
                findings.append(Finding("WARN", d.device_id, f"{r.variable} = {r.raw_value:g} {r.raw_unit}: "
                                                             f"{', '.join(flag_names(suspect))}"))
        if d.status == "ok" and d.missing:
            findings.append(Finding("WARN", d.device_id, f"registered but not reported: {', '.join(d.missing)}"))
    verdict: Verdict = ("FAIL" if any(f.level == "FAIL" for f in findings)
                        else "WARN" if findings else "PASS")
    return verdict, tuple(findings)
