"""The airrohr HTTP intake's verdict on one POST: its readings, or why it is refused. Pure (sensors).

Contract: `check_airrohr_post(intake, body, …)` decodes the body with the intake's airrohr decoder and device
directory and returns the `Resolved` readings, marked with the POST's delivery identity (a retried POST — after a
503, or by a proxy — is recognised by its body within `redelivery_window_s`: sensors.delivery), or a `Refusal`
that says which sensor, why (the dead letter's reason) and what to answer:
- a body that does not decode, or names no registered device: 400 (404 for an unknown device);
- a body of another sensor than the one whose credentials authenticated the POST, or of a device that is not an
  HTTP device (an MQTT one): 403 `identity_mismatch`, else one sensor's credentials would write as any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sensors.delivery import http_delivery
from sensors.mqtt.directory import Resolved, UnknownDeviceError
from sensors.mqtt.payloads import PayloadError
from sensors.mqtt.subscriber import Intake, with_delivery

__all__ = ["AIRROHR_PATH", "Refusal", "check_airrohr_post", "post_origin"]

AIRROHR_PATH = "/intake/airrohr"  #: where airrohr devices POST (the intake listener's one route)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A POST whose readings are refused: kept as a dead letter, and answered `status` with `answer`."""

    sensor_id: str | None  #: the sensor the dead letter is filed under
    reason: str  #: the dead letter's reason (metrics label)
    detail: str  #: for a person (the log and the dead letter)
    status: int  #: HTTP status of the answer
    answer: dict[str, str]  #: JSON body of the answer


def post_origin(sender: str, x_sensor: str | None) -> str:
    """Where a POST came from, as dead letters and log lines name it."""
    return f"POST {AIRROHR_PATH} by {sender} (X-Sensor {x_sensor or '-'})"


def check_airrohr_post(intake: Intake, body: bytes, *, sender: str, where: str, received_at: datetime,
                       protocol_of: Callable[[str], str], redelivery_window_s: float) -> Resolved | Refusal:
    """The readings of an airrohr POST by `sender` (the sensor whose HTTP credentials authenticated it), or why
    they are refused. `protocol_of`: device id → its protocol ("unknown" for none)."""
    try:
        resolved = intake.resolve(where, body, None, fmt="airrohr", received_at=received_at)
    except (PayloadError, UnknownDeviceError) as exc:
        sensor_id = getattr(exc, "sensor_id", None) or sender
        return Refusal(sensor_id, exc.reason, exc.detail, 404 if exc.reason == "unknown_device" else 400,
                       {"error": exc.reason, "detail": exc.detail})
    # the body names its device (esp8266id): it must be the authenticated sensor's own HTTP device
    protocols = {protocol_of(r.device_id) for r in resolved.readings}
    if resolved.sensor_id != sender or protocols - {"http"}:
        detail = (f"credentials of sensor {sender}, body of sensor {resolved.sensor_id} "
                  f"(device protocols {', '.join(sorted(protocols)) or '-'})")
        return Refusal(sender, "identity_mismatch", detail, 403,
                       {"error": "forbidden", "detail": "the body is not this sensor's own HTTP "
                        "device's: only a sensor's own readings are accepted"})
    return with_delivery(resolved, lambda: http_delivery(resolved.sensor_id, AIRROHR_PATH, body,
                                                         window_s=redelivery_window_s))
