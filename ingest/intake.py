"""What the drivers hand the pipeline besides readings, and the HTTP devices' wait for durability. I/O glue (ingest).

Contracts:
- `IntakeSubmitter.reject(rejection, ack)`: a message the intake refused becomes a dead letter in the next batch,
  durable (database or spool) before `ack` runs (the MQTT subscriber's `reject`).
- `IntakeSubmitter.airrohr_post(body, sender, x_sensor)`: an authenticated airrohr POST (sensors.http.airrohr
  decides readings or refusal) is answered only once what it brought is durable: its readings (200), or its dead
  letter (400/403/404). When that takes longer than `durable_timeout_s` the answer is 503 ("send again"; the retry
  is recognised as the same delivery).
- `IntakeSubmitter.modbus_status(event)`: the first failure of a Modbus device after a success is one dead letter
  (one per outage, not one per poll), queued without waiting (`Pipeline.try_submit`); when ingest is full the
  log line keeps it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ingest.letter import Letter
from ingest.pipeline import Pipeline
from sensors.http.airrohr import Refusal, check_airrohr_post, post_origin
from sensors.modbus.poller import StatusEvent
from sensors.mqtt.subscriber import Intake, Rejection

__all__ = ["NOT_DURABLE", "IntakeSubmitter", "modbus_status_letter"]

log = logging.getLogger(__name__)

#: the answer to a device whose POST is not durable within the deadline
NOT_DURABLE = {"error": "not_durable_yet", "detail": "the database is slow; send again"}


def modbus_status_letter(event: StatusEvent, now: datetime) -> Letter | None:
    """The dead letter of a Modbus device's first failure after a success (None for any other status event)."""
    if event.recovered or not event.first_failure:
        return None
    where = f"{event.endpoint} unit {event.unit_id}"
    if event.table is not None:
        where += f" {event.table} {event.address}×{event.count}"
    detail = f"{event.device_id} ({where}): {event.detail}"
    return Letter("modbus", event.reason, detail, now, sensor_id=event.sensor_id, endpoint=where)


class IntakeSubmitter:
    """Submits refused input (dead letters) and the HTTP devices' POSTs to the pipeline (module docstring).

    Args:
        pipeline: where everything goes.
        intake: the running intake (its device directory follows the registry).
        clock: the daemon's clock (dead letters' receipt time).
        durable_timeout_s: a device POST answers 503 when not durable within this (http.durable_timeout_s).
        redelivery_window_s: a POST with the same body within this is a retry (http.redelivery_window_s).
        protocol_of: device id → its protocol ("unknown" when not registered).
        on_rejected: `(source, reason)` for every refused message (the rejections counter).
    """

    def __init__(self, pipeline: Pipeline, intake: Intake, *, clock: Callable[[], datetime],
                 durable_timeout_s: float, redelivery_window_s: float, protocol_of: Callable[[str], str],
                 on_rejected: Callable[[str, str], None]) -> None:
        self._pipeline = pipeline
        self._intake = intake
        self._clock = clock
        self._durable_timeout_s = durable_timeout_s
        self._redelivery_window_s = redelivery_window_s
        self._protocol_of = protocol_of
        self._on_rejected = on_rejected

    async def reject(self, rej: Rejection, ack: Callable[[], None]) -> None:
        """Queue the refused message as a dead letter; `ack` runs once it is durable."""
        self._on_rejected(rej.source, rej.reason)
        letter = Letter(rej.source, rej.reason, rej.detail, self._clock(), sensor_id=rej.sensor_id,
                        payload=rej.payload, topic=rej.topic, fmt="airrohr" if rej.source == "http" else None)
        await self._pipeline.submit([], ack, letters=[letter])

    async def until_durable(self, submit: Callable[[Callable[[], None]], Awaitable[None]]) -> bool:
        """Submit with an ack that resolves a future; True once durable, False after the HTTP deadline."""
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def ack() -> None:
            if not durable.done():
                durable.set_result(None)

        await submit(ack)
        try:
            async with asyncio.timeout(self._durable_timeout_s):
                await asyncio.shield(durable)
        except TimeoutError:
            return False
        return True

    async def airrohr_post(self, body: bytes, sender: str, x_sensor: str | None) -> tuple[int, dict[str, Any]]:
        """Answer an airrohr POST by `sender` (the sensor whose HTTP credentials authenticated it): status, body."""
        where = post_origin(sender, x_sensor)
        verdict = check_airrohr_post(self._intake, body, sender=sender, where=where, received_at=self._clock(),
                                     protocol_of=self._protocol_of, redelivery_window_s=self._redelivery_window_s)
        if isinstance(verdict, Refusal):
            log.warning("sensor %s: airrohr HTTP intake %s (%s): %s", verdict.sensor_id,
                        "refused" if verdict.status == 403 else "rejected", verdict.reason, verdict.detail)
            # acknowledged only once its dead letter is durable
            rejection = Rejection("http", where, verdict.sensor_id, verdict.reason, verdict.detail, body)
            if not await self.until_durable(lambda ack: self.reject(rejection, ack)):
                return 503, NOT_DURABLE
            return verdict.status, dict(verdict.answer)
        readings = list(verdict.readings)
        if not await self.until_durable(lambda ack: self._pipeline.submit(readings, ack)):
            return 503, NOT_DURABLE
        return 200, {"sensor_id": verdict.sensor_id, "readings": len(verdict.readings)}

    def modbus_status(self, event: StatusEvent) -> None:
        """Queue the dead letter of a Modbus device's first failure, without waiting (module docstring)."""
        letter = modbus_status_letter(event, self._clock())
        if letter is not None and not self._pipeline.try_submit([], letters=[letter]):
            log.error("dead letter not queued (ingest full): modbus %s %s", letter.reason, letter.detail)

