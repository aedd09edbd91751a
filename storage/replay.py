"""Replay dead letters: decode their stored bytes again with today's payload formats and registry and store the
readings through the normal ingest path. I/O.

The daemon owns its pipeline in its own process, so a replay runs its own: `sensors.mqtt.subscriber.Intake`
(decoders and device directory built from the same network the daemon uses) → `ingest.pipeline.Pipeline`
(normalise, QC) → `storage.writer.TimescaleWriter` (idempotent: a reading already stored is a no-op, never a
second row). Each letter is replayed as of its receipt: its `received_at` is the receive time of the decoded
readings (a payload without a time gets the same time on every replay) and the pipeline's clock, and the
temperature and pressure for the reference-conditions correction are those stored in `measurements` in the two
hours before it (the daemon's `ConditionsBook` rule: own, then nearest station, then site defaults).

Outcomes, one per letter, each also recorded on the letter (`storage.deadletter.mark_*`):
- stored: it produced readings (new rows, or rows already there); `replayed_at` is set, it is never replayed again.
- failed: it fails again (payload error, unknown sensor, every reading rejected, write error); it stays pending
  with the new error.
- skipped: already replayed.  not_replayable: only MQTT/HTTP payload letters with a topic can be replayed
  (a writer conflict keeps the first stored value: correct a value with `aqnet reprocess`, not a replay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool

from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import QC, Reading
from sensors.mqtt.directory import UnknownDeviceError
from sensors.mqtt.payloads import FORMATS, Decoder, PayloadError
from sensors.mqtt.subscriber import Intake
from sensors.reading import RawReading
from sensors.sensor import Sensor
from storage import deadletter
from storage.deadletter import DeadLetter
from storage.registry.calibrations import load_calibration_book
from storage.writer import TimescaleWriter, WriteResult

__all__ = ["REPLAYABLE_SOURCES", "Outcome", "Replayer", "not_replayable"]

#: sources whose letters hold a whole message's bytes that the intake can decode again
REPLAYABLE_SOURCES = frozenset({"mqtt", "http"})
#: the HTTP intake's path prefix (aqnet.daemon records the topic as "POST /intake/airrohr (X-Sensor …)")
_AIRROHR_HTTP = "POST /intake/airrohr"
#: how far back stored temperature/pressure count for a replayed letter: ConditionsBook's default max_age
_CONDITIONS_WINDOW = timedelta(hours=2)

Status = Literal["stored", "failed", "skipped", "not_replayable", "missing"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What replaying one letter did."""

    letter_id: int
    status: Status
    message: str  #: what was stored, or the error (for "failed" without the reason)
    sensor_id: str | None = None
    reason: str | None = None  #: "failed": the error's reason code (not_json, unknown_sensor, write_failed, ...)


def not_replayable(letter: DeadLetter) -> str | None:
    """Why `letter` cannot be replayed, or None when it can."""
    if letter.source == "writer" and letter.reason == "conflict":
        return ("a writer conflict is not replayable: the first stored value is kept; correct stored values with "
                "`aqnet reprocess`")
    if letter.source not in REPLAYABLE_SOURCES:
        return (f"source {letter.source!r} is not replayable: only MQTT and HTTP payload letters hold a message "
                "that can be decoded again")
    if letter.payload is None:
        return "no payload bytes were stored with it"
    if letter.truncated:
        return (f"only the first {len(letter.payload)} of its {letter.payload_size} bytes were kept (a payload "
                "that large is refused by every decoder)")
    if letter.topic is None and letter.format is None:
        return ("no topic or format was recorded with it (recorded before aqnet kept topics): its payload format "
                "and sender cannot be told, and aqnet does not guess")
    return None


def _format_of(letter: DeadLetter) -> str | None:
    if letter.format is not None:
        return letter.format
    if letter.source == "http" and (letter.topic or "").startswith(_AIRROHR_HTTP):
        return "airrohr"
    return None  # Intake derives it from the MQTT topic


class _Sink:
    """Wraps the writer so one failing write becomes that letter's outcome instead of an endless retry."""

    def __init__(self, writer: TimescaleWriter) -> None:
        self._writer = writer
        self.result: WriteResult | None = None
        self.error: Exception | None = None

    async def write(self, batch: Sequence[Reading], letters: Sequence[object] = ()) -> WriteResult | None:
        # a replay's refusals are that letter's outcome (Outcome), not new dead letters: `letters` is not stored
        if not batch:
            return self.result
        try:
            self.result = await self._writer.write(batch)
        except Exception as exc:  # any write error is reported on the letter, never raised
            self.error = exc
        return self.result


class _Observer:
    """Collects the readings the pipeline rejected (normalise errors) for the current letter."""

    def __init__(self) -> None:
        self.rejections: list[tuple[RawReading, str, str]] = []

    def written(self, batch: Sequence[Reading], result: object, seconds: float) -> None:
        pass

    def write_failed(self, error: Exception, attempt: int) -> None:
        pass

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None:
        self.rejections.append((raw, reason, detail))


class Replayer:
    """Replays dead letters into `measurements` through a pool; see the module docstring.

    Args:
        pool: an open AsyncConnectionPool on aqnet's database.
        network: the configured sensors (what the daemon builds from its settings).
        tz: the network's time zone (payload times without an offset are read in it).
        skew_tolerance_s: the daemon's `ingest.clock_skew_tolerance_s`.
        clock: the time written to `replayed_at`.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], network: Iterable[Sensor], *, tz: tzinfo,
                 skew_tolerance_s: float = 300.0, decoders: Mapping[str, Decoder] = FORMATS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool = pool
        self._network = list(network)
        self._intake = Intake(self._network, tz=tz, decoders=decoders)
        self._skew_tolerance_s = skew_tolerance_s
        self._clock = clock

    async def replay(self, letters: Sequence[DeadLetter]) -> list[Outcome]:
        """Replay `letters` in the order they were received; one Outcome per letter, in that order."""
        ordered = sorted(letters, key=lambda x: (x.received_at, x.id))
        now = [datetime.now(UTC)]
        sink, observer = _Sink(TimescaleWriter(self._pool)), _Observer()
        conditions = ConditionsBook(self._network)
        async with self._pool.connection() as conn:
            calibrations = await load_calibration_book(conn)  # replayed readings are calibrated like live ones
        pipeline = Pipeline(sink, conditions=conditions, observer=observer, clock=lambda: now[0], batch_max=1,
                            batch_max_age_s=0.2, clock_skew_tolerance_s=self._skew_tolerance_s,
                            calibrations=calibrations)
        task = asyncio.create_task(pipeline.run(), name="replay-pipeline")
        outcomes: list[Outcome] = []
        try:
            for letter in ordered:
                now[0] = letter.received_at
                outcomes.append(await self._one(letter, pipeline, task, sink, observer, conditions))
        finally:
            pipeline.close()
            await task
        return outcomes

    async def _one(self, letter: DeadLetter, pipeline: Pipeline, task: asyncio.Task[None], sink: _Sink,
                   observer: _Observer, conditions: ConditionsBook) -> Outcome:
        if letter.replayed_at is not None:
            return Outcome(letter.id, "skipped", f"already replayed at {letter.replayed_at.isoformat()}: "
                           f"{letter.replay_result}", letter.sensor_id)
        why = not_replayable(letter)
        if why is not None:
            return Outcome(letter.id, "not_replayable", why, letter.sensor_id)
        assert letter.payload is not None
        topic = letter.topic or f"({letter.source} letter {letter.id})"
        try:
            resolved = self._intake.resolve(topic, letter.payload, None, fmt=_format_of(letter),
                                            received_at=letter.received_at)
        except (PayloadError, UnknownDeviceError) as exc:
            sensor_id = getattr(exc, "sensor_id", None) or letter.sensor_id
            return await self._failed(letter, exc.reason, exc.detail, sensor_id)
        except Exception as exc:  # a decoder bug must not stop the other letters
            return await self._failed(letter, "decoder_error", f"{type(exc).__name__}: {exc}", letter.sensor_id)
        if not resolved.readings:
            unmapped = ", ".join(resolved.unmapped) or "none"
            return await self._failed(letter, "no_readings", f"decoded, but no device of {resolved.sensor_id} "
                                      f"takes its values (unmapped channels: {unmapped})", resolved.sensor_id)
        await self._seed_conditions(conditions, letter.received_at)
        sink.result, sink.error, observer.rejections = None, None, []
        durable = asyncio.Event()
        try:
            await pipeline.submit(list(resolved.readings), durable.set)
        except Exception as exc:  # a normaliser bug must not stop the other letters
            return await self._failed(letter, "pipeline_error", f"{type(exc).__name__}: {exc}", resolved.sensor_id)
        await self._until_durable(durable, task)
        rejected = "; ".join(f"{raw.variable} rejected ({reason}): {detail}"
                             for raw, reason, detail in observer.rejections)
        if sink.error is not None:
            return await self._failed(letter, "write_failed", f"{type(sink.error).__name__}: {sink.error}",
                                      resolved.sensor_id)
        if sink.result is None:  # every reading was rejected by normalisation
            return await self._failed(letter, observer.rejections[0][1] if observer.rejections else "no_readings",
                                      rejected or "no reading survived normalisation", resolved.sensor_id)
        r = sink.result
        parts = [f"stored {r.inserted} reading{'s' if r.inserted != 1 else ''}"]
        if r.duplicates:
            parts.append(f"{r.duplicates} already stored")
        if r.conflicts:
            parts.append(f"{r.conflicts} conflicting with stored values (dead-lettered by the writer)")
        if rejected:
            parts.append(rejected)
        message = "; ".join(parts)
        async with self._pool.connection() as conn:
            await deadletter.mark_replayed(conn, letter.id, message, self._clock())
        return Outcome(letter.id, "stored", message, resolved.sensor_id)

    @staticmethod
    async def _until_durable(durable: asyncio.Event, task: asyncio.Task[None]) -> None:
        waiter = asyncio.create_task(durable.wait())
        done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:  # the pipeline itself stopped: nothing more can be replayed
            waiter.cancel()
            error = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"the replay pipeline stopped unexpectedly: {error!r}") from error

    async def _failed(self, letter: DeadLetter, reason: str, detail: str, sensor_id: str | None) -> Outcome:
        async with self._pool.connection() as conn:
            await deadletter.mark_failed(conn, letter.id, f"failed ({reason}): {detail}", detail)
        return Outcome(letter.id, "failed", detail, sensor_id, reason)

    async def _seed_conditions(self, book: ConditionsBook, at: datetime) -> None:
        """Observe the stored temperature and pressure of the 2 h before `at` (latest per sensor)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT ON (sensor_id, variable) sensor_id, device_id, variable, time, value, unit, flags, "
                "raw_value, raw_unit, received_at FROM measurements "
                "WHERE variable IN ('temperature', 'pressure') AND value IS NOT NULL AND time > %s AND time <= %s "
                "ORDER BY sensor_id, variable, time DESC", (at - _CONDITIONS_WINDOW, at))
            rows = await cur.fetchall()
        for sid, did, var, time, value, unit, flags, raw_value, raw_unit, received_at in rows:
            book.observe(Reading(sensor_id=sid, device_id=did, variable=var, time=time, value=value, unit=unit,
                                 flags=QC(flags), raw_value=raw_value, raw_unit=raw_unit, received_at=received_at))
