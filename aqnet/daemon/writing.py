"""The daemon's start steps for the write path: database, spool and forwarding sink, pipeline. Shell (aqnet), I/O.

The database (migrations, the ingest pool), the spool and the forwarding sink, and the pipeline. Builds `storage`
and `ingest` objects from the settings, starts their tasks and pushes their cleanup on the daemon's exit stack."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from aqnet.config import Settings
from aqnet.daemon.observer import PipelineMetrics, watch_spool
from aqnet.daemon.processes import Role
from aqnet.daemon.wiring import Wiring
from aqnet.health import CountedSink
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.plausibility import TimeWindow
from sensors.sensor import Sensor
from storage.forwarding import ForwardingSink
from storage.migrate import migrate
from storage.nodes.fence import FencedSink, writer_options
from storage.registry import upsert_registry
from storage.spool import Spool
from storage.writer_thread import WriterThread

__all__ = ["WritePath", "open_database", "open_storage", "start_pipeline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WritePath:
    """The pipeline and where it writes: `written` counts finished write attempts (liveness)."""

    pipeline: Pipeline
    written: CountedSink
    sink: ForwardingSink | FencedSink


async def open_database(stack: contextlib.AsyncExitStack, s: Settings, *,
                        apply_migrations: bool = True) -> AsyncConnectionPool[Any]:
    """Apply migrations (when `apply_migrations` and `database.migrate_on_start`: process 0 does, before it starts the
    others), then open the daemon's pool; closed last."""
    if apply_migrations and s.database.migrate_on_start:
        with psycopg.connect(s.database.url, autocommit=False) as conn:
            applied = migrate(conn)
            if applied:
                log.info("database migrations applied: %s", ", ".join(applied))
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        s.database.url, min_size=s.database.pool_min_size, max_size=s.database.pool_max_size,
        timeout=s.database.pool_timeout_s, open=False, kwargs={"application_name": "aqnet"},
        # give up a reconnect series soon: the next request starts a fresh one at once, so the database is found
        # again within ~retry_s of its return
        reconnect_timeout=s.storage.unreachable_after_s)
    await pool.open(wait=True, timeout=30)
    stack.push_async_callback(pool.close)
    return pool


async def open_storage(w: Wiring, pool: AsyncConnectionPool[Any], seed: list[Sensor] | None,
                       observer: PipelineMetrics, role: Role, *,
                       on_fenced: Callable[[str], Awaitable[None]] | None = None) -> ForwardingSink | FencedSink:
    """Open the spool (this process's: `aqnet.daemon.processes`), seed the registry (unless `seed` is None), and
    start the measurements writer (in a thread of its own), the forwarding sink (database, else spool) and its
    replay. A node of several (`nodes.enabled`) writes to the database only, fenced (`storage.nodes.fence`):
    `on_fenced` is told which session the database refused."""
    s = w.settings
    if s.nodes.enabled:
        assert on_fenced is not None, "open_storage: a node needs on_fenced"
        if seed is not None:
            await upsert_registry(pool, seed)
        writer = WriterThread(s.database.url, pool_kwargs={
            "min_size": 1, "max_size": s.ingest.writes_in_flight, "timeout": s.database.pool_timeout_s,
            "kwargs": {"application_name": "aqnet-writer",
                       "options": writer_options(s.nodes.resolved_node_id(),
                                                 idle_in_transaction_s=s.nodes.lease_renew_s)},
            "reconnect_timeout": s.storage.unreachable_after_s})
        await writer.start()
        w.stack.push_async_callback(writer.close)
        return FencedSink(writer, on_fenced)
    spool = Spool(role.spool_dir(s.storage.spool_dir), max_bytes=role.spool_max_bytes(s.storage.spool_max_bytes),
                  near_full_fraction=s.storage.spool_near_full_fraction)
    w.stack.callback(spool.close)
    if seed is not None:
        await upsert_registry(pool, seed)
    # the measurements writer runs on an event loop of its own, with a pool of its own (one connection per batch
    # in flight): its round trips do not wait for this loop's turns (storage.writer_thread)
    writer = WriterThread(s.database.url, pool_kwargs={
        "min_size": 1, "max_size": s.ingest.writes_in_flight, "timeout": s.database.pool_timeout_s,
        "kwargs": {"application_name": "aqnet-writer"}, "reconnect_timeout": s.storage.unreachable_after_s})
    await writer.start()
    w.stack.push_async_callback(writer.close)
    sink = ForwardingSink(writer, spool, clock=w.clock, replay_retry_s=s.storage.replay_retry_s,
                          unreachable_after_s=s.storage.unreachable_after_s, on_replayed=observer.replayed)
    w.stack.push_async_callback(sink.close)
    watch_spool(w.metrics, sink)
    w.start("spool-replay", sink.replay)
    return sink


def start_pipeline(w: Wiring, sink: ForwardingSink | FencedSink, observer: PipelineMetrics) -> WritePath:
    """Start the pipeline (normalise, QC, batch) into `sink`; the registry's books are put in by live reload."""
    s = w.settings
    written = CountedSink(sink)  # liveness: each finished write attempt is progress
    pipeline = Pipeline(written, conditions=ConditionsBook(()), observer=observer, clock=w.clock,
                        batch_max=s.ingest.batch_max, batch_max_age_s=s.ingest.batch_max_age_s,
                        queue_max=s.ingest.queue_max, clock_skew_tolerance_s=s.ingest.clock_skew_tolerance_s,
                        time_window=TimeWindow(s.ingest.device_time_past_days, s.ingest.device_time_future_s))
    pipeline.writes_in_flight = s.ingest.writes_in_flight
    pipeline.write_when_idle = s.ingest.write_when_idle
    pipeline.batch_min_age_s = s.ingest.batch_min_age_s
    # the pipeline's batcher and unacknowledged envelopes cannot be rebuilt: if it dies, the daemon exits
    w.start("pipeline", pipeline.run, restart=False)
    return WritePath(pipeline, written, sink)
