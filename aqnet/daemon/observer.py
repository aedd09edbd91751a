"""The daemon's view of the pipeline, the spool and its tasks: metrics and last-seen times. Shell (aqnet), pure.

Reads what the stages report, and only updates metrics and the daemon's status document.

`PipelineMetrics` is the pipeline's observer (ingest.pipeline.PipelineObserver): readings written, spooled,
replayed and refused, per protocol; the newest reading per sensor. `watch_spool(metrics, sink)` makes the spool
and forwarding gauges read the forwarding sink at scrape time. `TaskMetrics` keeps the supervised tasks' gauges
(`aqnet_task_up`, `aqnet_task_restarts_total`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any

from aqnet.metrics import Metrics
from ingest.reading import Reading
from sensors.reading import RawReading
from storage.forwarding import ForwardingSink, Spooled

__all__ = ["PipelineMetrics", "TaskMetrics", "watch_spool"]


class PipelineMetrics:
    """Pipeline observer: metrics and per-sensor last-seen (refused readings travel as letters in the batch).

    Args:
        metrics: the daemon's metrics.
        protocol_of: the device id → protocol mapping in force now (it is replaced on each registry change).
        last_seen: sensor id → newest reading time, updated in place (the daemon's `/status`).
        count: called with the number of readings stored by each write (the daemon's `readings_total`).
    """

    def __init__(self, metrics: Metrics, *, protocol_of: Callable[[], Mapping[str, str]],
                 last_seen: MutableMapping[str, datetime], count: Callable[[int], None]) -> None:
        self._m = metrics
        self._protocol_of = protocol_of
        self._last_seen = last_seen
        self._count = count

    def written(self, batch: Sequence[Reading], result: Any, seconds: float) -> None:
        m = self._m
        if isinstance(result, Spooled):  # durable on local disk; counted as stored when replayed
            m.spooled.inc(result.readings)
            return
        m.write_seconds.observe(seconds)
        self._count(getattr(result, "inserted", len(batch)))
        for name in ("inserted", "duplicates", "conflicts"):
            m.rows.labels(name.rstrip("s")).inc(getattr(result, name, 0))
        protocol_of = self._protocol_of()
        per_protocol: Counter[str] = Counter(protocol_of.get(r.device_id, "unknown") for r in batch)
        for protocol, n in per_protocol.items():  # one metric update per protocol, not per reading
            m.readings.labels(protocol).inc(n)
        newest: dict[str, datetime] = {}
        for r in batch:
            if r.sensor_id not in newest or r.time > newest[r.sensor_id]:
                newest[r.sensor_id] = r.time
        for sensor_id, t in newest.items():
            last = self._last_seen.get(sensor_id)
            if last is None or t > last:
                self._last_seen[sensor_id] = t
                m.last_reading.labels(sensor_id).set(t.timestamp())

    def replayed(self, batch: Sequence[Reading], result: Any, seconds: float) -> None:
        self._m.replayed.inc(len(batch))
        self.written(batch, result, seconds)

    def write_failed(self, error: Exception, attempt: int) -> None:
        self._m.write_failures.inc()

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None:
        # the pipeline keeps a reading that cannot be normalised as a dead letter, durably with its batch
        protocol = self._protocol_of().get(raw.device_id, "unknown")
        self._m.rejected.labels(protocol, reason).inc()


def watch_spool(m: Metrics, sink: ForwardingSink) -> None:
    """Make the spool and forwarding-state gauges read `sink` at scrape time."""
    m.spool_bytes.set_function(lambda: sink.stats().spool.pending_bytes)
    m.spool_batches.set_function(lambda: sink.stats().spool.pending_batches)
    m.spool_readings.set_function(lambda: sink.stats().spool.pending_readings)
    m.spool_near_full.set_function(lambda: float(sink.stats().spool.near_full))
    m.spool_full.set_function(lambda: float(sink.stats().spool.full))
    m.spool_disk_full.set_function(lambda: float(sink.stats().spool.disk_full))
    for state in ("direct", "spooling", "replaying"):
        m.forwarding_state.labels(state).set_function(_in_state(sink, state))


def _in_state(sink: ForwardingSink, state: str) -> Callable[[], float]:
    return lambda: float(sink.state == state)


class TaskMetrics:
    """The supervised tasks' metrics (the daemon's tasks and the station pollers alike)."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def state(self, name: str, up: bool) -> None:
        """Task `name` started (`up`) or went down."""
        self._m.task_up.labels(name).set(1 if up else 0)
        self._m.task_restarts.labels(name)  # the series exists (0) from the task's start

    def restarted(self, name: str) -> None:
        """Task `name` was restarted after it died."""
        self._m.task_restarts.labels(name).inc()

    def removed(self, name: str) -> None:
        """Task `name` is gone for good (a station the registry no longer polls)."""
        self._m.task_up.remove(name)
