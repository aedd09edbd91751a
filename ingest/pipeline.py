"""The ingest pipeline: drivers' RawReadings → normalise → QC → batch → `Sink`, acks after durability. I/O glue.

Drivers call `submit(raw_readings, ack, letters=())`; it waits while the bounded queue is full, which is the
backpressure that reaches the drivers (the MQTT broker then keeps the unacknowledged messages). A batch is written
when it holds `batch_max` submissions or its oldest is `batch_max_age_s` old, or — with `write_when_idle` (the
daemon's default) — as soon as no batch is in flight and no submission waits (group commit: at low rates each
submission is written at once, under load the next batch gathers while the previous one is written); up to
`writes_in_flight` batches are written at once (`ingest.inflight`), and the acks of a batch run only after the sink
has committed it and every earlier batch was acknowledged (MQTT acknowledges in the order messages arrived). A write
that fails is retried with backoff and never acknowledged meanwhile (one ERROR line per episode, DEBUG while it
repeats, INFO when no batch is failing any more). Refused input travels with the batch as
`ingest.letter.Letter`s — messages the driver could not decode (`letters=`) and readings that cannot be
normalised — and the sink makes them durable with the readings, so nothing is acknowledged on a log line alone.
Submissions wait in the
queue as they came (a driver's `submit` does no work beyond queueing); the run loop takes every submission waiting,
up to the batch's room, and normalises and checks them as one group (`ingest.batch`: numpy from 80 readings on,
identical to reading by reading over the group, meteorological readings first), at the clock of the group's last
submission. A group's site conditions are therefore the newest recorded up to the end of the group: a reading may
be corrected with a temperature or pressure that arrived a moment after it (never one older than the book's
`max_age`). Readings inside a
maintenance window get QC.MAINTENANCE (`ingest.maintenance`); the books the pipeline reads (calibrations,
maintenance, site conditions, ranges) are immutable and swapped whole by the daemon when the registry changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, cast

from ingest.batch import BatchNormaliser
from ingest.batcher import Batcher
from ingest.calibration import CalibrationBook
from ingest.inflight import WriteWindow
from ingest.letter import Letter
from ingest.maintenance import MaintenanceBook
from ingest.normalise import ConditionsBook
from ingest.plausibility import TimeWindow
from ingest.qc import QCState
from ingest.reading import Reading
from sensors.reading import RawReading

__all__ = ["Pipeline", "PipelineObserver", "Sink"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where batches go; `write` returns once the batch and its letters are durable (committed) or raises."""

    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object: ...


class PipelineObserver(Protocol):
    """Metrics and dead-letter hooks supplied by the daemon."""

    def written(self, batch: Sequence[Reading], result: object, seconds: float) -> None: ...

    def write_failed(self, error: Exception, attempt: int) -> None: ...

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None: ...


@dataclass(slots=True)
class _Submission:
    """One driver submission as it came, waiting in the queue."""

    raws: Sequence[RawReading]
    ack: Callable[[], None] | None
    letters: Sequence[Letter]
    at: datetime  #: the clock when it was submitted
    books: tuple[object, ...]  #: the calibrations, maintenance and ranges in force when it was submitted


@dataclass(slots=True)
class _Envelope:
    """A group of submissions, normalised: their readings, acks (in submission order) and letters."""

    readings: list[Reading]
    acks: list[Callable[[], None]] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)


def _letter_of(raw: RawReading, reason: str, detail: str) -> Letter:
    reading = {"sensor_id": raw.sensor_id, "device_id": raw.device_id, "variable": raw.variable,
               "value": raw.value, "unit": raw.unit, "time": raw.time.isoformat()}
    return Letter("pipeline", reason, f"{raw.sensor_id}/{raw.device_id} {raw.variable}: {detail}",
                  raw.received_at, sensor_id=raw.sensor_id, reading=reading)


class Pipeline:
    """Normalises, checks and batches readings into a Sink; see the module docstring for the contract."""

    def __init__(self, sink: Sink, *, conditions: ConditionsBook, observer: PipelineObserver,
                 clock: Callable[[], datetime], ranges: Mapping[tuple[str, str], tuple[float, float]] | None = None,
                 batch_max: int = 200, batch_max_age_s: float = 1.0, queue_max: int = 10_000,
                 retry_max_s: float = 30.0, clock_skew_tolerance_s: float = 300.0,
                 calibrations: CalibrationBook | None = None, maintenance: MaintenanceBook | None = None,
                 time_window: TimeWindow | None = None) -> None:
        self._sink = sink
        #: normalisation and QC of a submission (ingest.batch): device times outside `time_window` are refused
        #: as dead letters (ingest.plausibility); numpy over the submission when it is large enough
        self._normaliser = BatchNormaliser(time_window=time_window, skew_tolerance_s=clock_skew_tolerance_s)
        #: site conditions (T, P, RH) per sensor; the daemon swaps in a new book when the network changes
        self.conditions = conditions
        self._observer = observer
        self._clock = clock
        #: (device id, variable) → plausible range in the reported unit; the daemon swaps in a new mapping
        self.ranges: Mapping[tuple[str, str], tuple[float, float]] = dict(ranges or {})
        self._batcher: Batcher[_Envelope] = Batcher(max_size=batch_max, max_age_s=batch_max_age_s)
        self._queue: asyncio.Queue[_Submission] = asyncio.Queue(maxsize=queue_max)
        self._qc: dict[tuple[str, str, str], QCState] = {}
        self._max_age_s = batch_max_age_s
        self._retry_max_s = retry_max_s
        #: the calibrations in force; the daemon swaps in a fresh immutable book on each refresh
        self.calibrations = calibrations
        #: the maintenance windows in force (QC.MAINTENANCE); swapped in like the calibrations
        self.maintenance = maintenance

    @property
    def queue_length(self) -> int:
        """Submissions waiting to be normalised."""
        return self._queue.qsize()

    async def submit(self, raws: Sequence[RawReading], ack: Callable[[], None] | None = None,
                     letters: Sequence[Letter] = ()) -> None:
        """Queue one driver submission (waits while the queue is full); `ack` runs once all its readings and
        letters (refused input to keep as dead letters) are durable."""
        await self._queue.put(_Submission(raws, ack, letters, self._clock(), self._books()))

    def try_submit(self, raws: Sequence[RawReading], letters: Sequence[Letter] = ()) -> bool:
        """Like `submit` for drivers that must not wait (Modbus pollers): False, and nothing queued, when the
        queue is full."""
        if self._queue.full():
            return False
        self._queue.put_nowait(_Submission(raws, None, letters, self._clock(), self._books()))
        return True

    def _books(self) -> tuple[object, ...]:
        return (self.calibrations, self.maintenance, self.ranges)

    def _normalise(self, group: Sequence[_Submission]) -> _Envelope:
        """Normalise and check a group of submissions (one set of books) as one batch (module docstring)."""
        raws = [raw for sub in group for raw in sub.raws] if len(group) > 1 else list(group[0].raws)
        calibrations, maintenance, ranges = group[0].books
        done = self._normaliser(raws, group[-1].at, conditions=self.conditions, qc=self._qc,
                                ranges=cast("Mapping[tuple[str, str], tuple[float, float]]", ranges),
                                calibrations=cast("CalibrationBook | None", calibrations),
                                maintenance=cast("MaintenanceBook | None", maintenance))
        refused = [x for sub in group for x in sub.letters]
        for r in done.refused:  # UnitError, UnknownVariableError, NormaliseError
            raw = r.raw
            log.warning("sensor %s device %s: %s rejected: %s", raw.sensor_id, raw.device_id, raw.variable, r.detail)
            self._observer.rejected(raw, r.reason, r.detail)
            refused.append(_letter_of(raw, r.reason, r.detail))
        return _Envelope(done.readings, [sub.ack for sub in group if sub.ack is not None], refused)

    def _take(self, first: _Submission) -> list[_Submission]:
        """`first` and the submissions waiting behind it that were submitted under the same books, up to the
        pending batch's room (at least one); the first one under other books is held for the next group."""
        group = [first]
        room = self._batcher.max_size - self._batcher.size
        queue = self._queue
        while len(group) < room and not queue.empty():
            sub = queue.get_nowait()
            if not all(a is b for a, b in zip(sub.books, first.books, strict=True)):
                self._held = sub
                break
            group.append(sub)
        return group

    def _next(self) -> _Submission | None:
        """The submission held back by `_take`, else the queue's first, else None (without waiting)."""
        if self._held is not None:
            sub, self._held = self._held, None
            return sub
        return self._queue.get_nowait() if not self._queue.empty() else None

    async def run(self) -> None:
        """Batch and write until cancelled or `close()`d; flushes what it holds, and waits for every batch in
        flight, before returning. A cancel abandons the batches in flight (never acknowledged, nor anything after
        them: the broker redelivers)."""
        window = WriteWindow(self.writes_in_flight)
        self._retrying: set[object] = set()  #: batches in flight whose last write attempt failed
        try:
            while True:
                await window.free()  # input waits in the queue while every slot is taken
                group: list[_Submission] | None = None
                first = self._next()
                if first is not None:
                    group = self._take(first)
                else:
                    try:  # asyncio.timeout, not wait_for: 3.11's wait_for can drop a cancel (a stop) as get returns
                        async with asyncio.timeout(self._max_age_s / 2):
                            first = await self._wait(window)
                            group = self._take(first) if first is not None else None
                    except TimeoutError:
                        if self._queue.empty() and self._closing:
                            break
                now = self._clock()
                if group is not None and not self._batcher.size:
                    self._pending_since = time.monotonic()
                batch = self._batcher.add(self._normalise(group), now, len(group)) if group is not None else None
                batch = batch or self._batcher.due(now)
                if not batch and self._idle_due(window):
                    batch = self._batcher.drain()  # nothing is being written and nothing more waits: write now
                if batch:
                    await self._write(window, batch)
                window.raise_failure()
        except asyncio.CancelledError:
            window.cancel()
            raise
        finally:
            rest = self._batcher.drain()
            while (first := self._next()) is not None:
                rest.append(self._normalise(self._take(first)))
            if rest:
                await self._write(window, rest)
            await window.drain()
        window.raise_failure()

    def _idle_due(self, window: WriteWindow) -> bool:
        """Write-when-idle: a batch is pending and at least `batch_min_age_s` old, no batch is in flight and no
        submission waits."""
        return (self.write_when_idle and self._batcher.size > 0 and window.in_flight == 0 and self._queue.empty()
                and self._held is None and time.monotonic() - self._pending_since >= self.batch_min_age_s)

    async def _wait(self, window: WriteWindow) -> _Submission | None:
        """The next submission; or None as soon as a pending batch may go out with write-when-idle (the last batch
        in flight is done, or the pending batch reached `batch_min_age_s` with none in flight)."""
        if not (self.write_when_idle and self._batcher.size):
            return await self._queue.get()
        get = asyncio.ensure_future(self._queue.get())
        # a batch in flight: until it is done; none: until the pending batch reaches its minimum age
        idle = asyncio.ensure_future(window.idle.wait()) if window.in_flight else None
        timeout = None if idle else max(0.0, self._pending_since + self.batch_min_age_s - time.monotonic())
        try:
            await asyncio.wait({get} if idle is None else {get, idle}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # a timeout or a stop: a submission already taken is held, never lost
            if get.done() and not get.cancelled() and get.exception() is None:
                self._held = get.result()
            raise
        finally:
            if idle is not None:
                idle.cancel()
            if not get.done():
                get.cancel()  # a cancelled Queue.get leaves its item in the queue
        if get.done() and not get.cancelled():
            return get.result()
        return None

    _closing = False
    _held: _Submission | None = None  #: taken from the queue, not yet in a group (`_take`)
    _failing: type[Exception] | None = None  #: the kind of the last write failure, until no batch is failing
    #: batches written at once (`ingest.writes_in_flight`, set before `run()`): a batch's write starts while up to
    #: this many earlier ones are not yet acknowledged; acknowledgements stay in order (`ingest.inflight`)
    writes_in_flight = 1
    #: write the pending batch as soon as no batch is in flight and no submission waits (`ingest.write_when_idle`,
    #: set before `run()`), instead of waiting for `batch_max` or `batch_max_age_s`: at low rates each submission
    #: is written at once, under load batches grow while the previous one is written (group commit)
    write_when_idle = False
    #: with write_when_idle, a pending batch waits until its first submission is this old (monotonic seconds;
    #: `ingest.batch_min_age_s`): a few more submissions per transaction at a few milliseconds of latency
    batch_min_age_s = 0.0
    _pending_since = 0.0  #: time.monotonic() when the pending batch got its first submission

    def close(self) -> None:
        """Ask `run()` to flush and return once the queue is empty and every batch in flight is acknowledged."""
        self._closing = True

    async def _write(self, window: WriteWindow, envelopes: list[_Envelope]) -> None:
        """Start writing a batch in the window (waits for a free slot); its acks run once it and every earlier
        batch are durable."""
        batch = [r for env in envelopes for r in env.readings]
        letters = [x for env in envelopes for x in env.letters]

        def ack() -> None:
            for env in envelopes:
                for each in env.acks:
                    each()

        await window.start(lambda: self._store(batch, letters), ack, lambda: _keys(batch))

    async def _store(self, batch: list[Reading], letters: list[Letter]) -> None:
        """Write a batch to the sink, retrying with backoff until it is durable."""
        attempt = 0
        key = object()  # this batch, among those being retried
        while batch or letters:
            attempt += 1
            started = time.perf_counter()
            try:
                result = await self._sink.write(batch, letters)
            except Exception as exc:
                self._observer.write_failed(exc, attempt)
                delay = min(self._retry_max_s, 0.5 * 2 ** min(attempt, 8))
                # first failure of an episode (or a new kind of failure) at ERROR, repeats at DEBUG: a spool
                # full for an hour is one line, not one per retry
                level = logging.DEBUG if type(exc) is self._failing else logging.ERROR
                log.log(level, "writing a batch of %d readings and %d dead letters failed (attempt %d): %s; retry "
                        "in %.1f s, nothing acknowledged meanwhile", len(batch), len(letters), attempt, exc, delay)
                self._failing = type(exc)
                self._retrying.add(key)
                await asyncio.sleep(delay)
                continue
            self._observer.written(batch, result, time.perf_counter() - started)
            self._retrying.discard(key)
            if self._failing is not None and not self._retrying:  # the episode ends with its last failing batch
                log.info("batches are written again (after %d attempts for this one); acknowledging again",
                         attempt)
                self._failing = None
            break


def _keys(batch: Sequence[Reading]) -> set[object]:
    """What two batches must not write at once: measurement keys and receive-time message identities."""
    keys: set[object] = {(r.sensor_id, r.device_id, r.variable, r.time) for r in batch}
    keys.update(r.delivery.key for r in batch if r.delivery is not None)
    return keys
