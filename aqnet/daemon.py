"""The composition root: builds every stage from the settings, starts them in dependency order and stops them in
reverse order on SIGTERM/SIGINT after flushing. The only module that wires stages together.

The network comes from the registry: the configured sensors are seeded into it (`upsert_registry`), then what
the drivers poll and decode is what `load_network` says, followed live (`aqnet.supervisor`): a registry change
(new or retired device, move, swap, calibration, maintenance window) reaches the running stages within
`registry.refresh_s`, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts.dispatch import Dispatcher
from aqnet.alert_channels import (
    ChannelConfigError,
    build_channels,
    build_dispatcher,
    close_channels,
    load_or_create_key,
)
from aqnet.api import api_router
from aqnet.config import Settings
from aqnet.http import create_app
from aqnet.live_network import LiveNetwork, RegistryFollower, RegistrySnapshot, load_snapshot
from aqnet.metrics import Metrics
from aqnet.schedule import add_stage_jobs, load_rules
from aqnet.supervisor import PollerSupervisor, PollTarget
from ingest.calibration import CalibrationError
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import Reading
from sensors.clock import Clock
from sensors.modbus.link import LinkRegistry
from sensors.modbus.poller import StationPoller, StatusEvent
from sensors.mqtt.client import MqttSubscriberClient
from sensors.mqtt.directory import UnknownDeviceError
from sensors.mqtt.payloads import PayloadError
from sensors.mqtt.subscriber import Intake, MqttSubscriber, Rejection
from sensors.reading import Gap, RawReading
from sensors.sensor import Sensor
from storage import deadletter
from storage.calibrations import load_calibration_book
from storage.forwarding import ForwardingSink, Spooled
from storage.migrate import migrate
from storage.registry import upsert_registry
from storage.spool import Spool
from storage.writer import TimescaleWriter

__all__ = ["Daemon", "run_daemon"]

log = logging.getLogger(__name__)


class _Observer:
    """Pipeline observer: metrics, per-sensor last-seen and dead letters for rejected readings."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon

    def written(self, batch: Sequence[Reading], result: Any, seconds: float) -> None:
        m = self._d.metrics
        if isinstance(result, Spooled):  # durable on local disk; counted as stored when replayed
            m.spooled.inc(result.readings)
            return
        m.write_seconds.observe(seconds)
        self._d.readings_total += getattr(result, "inserted", len(batch))
        for name in ("inserted", "duplicates", "conflicts"):
            m.rows.labels(name.rstrip("s")).inc(getattr(result, name, 0))
        per_protocol: Counter[str] = Counter(self._d.protocol_of.get(r.device_id, "unknown") for r in batch)
        for protocol, n in per_protocol.items():  # one metric update per protocol, not per reading
            m.readings.labels(protocol).inc(n)
        newest: dict[str, datetime] = {}
        for r in batch:
            if r.sensor_id not in newest or r.time > newest[r.sensor_id]:
                newest[r.sensor_id] = r.time
        for sensor_id, t in newest.items():
            last = self._d.last_seen.get(sensor_id)
            if last is None or t > last:
                self._d.last_seen[sensor_id] = t
                m.last_reading.labels(sensor_id).set(t.timestamp())

    def replayed(self, batch: Sequence[Reading], result: Any, seconds: float) -> None:
        self._d.metrics.replayed.inc(len(batch))
        self.written(batch, result, seconds)

    def write_failed(self, error: Exception, attempt: int) -> None:
        self._d.metrics.write_failures.inc()

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None:
        protocol = self._d.protocol_of.get(raw.device_id, "unknown")
        self._d.metrics.rejected.labels(protocol, reason).inc()
        # a reading that cannot be normalised (unknown unit, impossible value, ...) is kept as a dead letter
        reading = {"sensor_id": raw.sensor_id, "device_id": raw.device_id, "variable": raw.variable,
                   "value": raw.value, "unit": raw.unit, "time": raw.time.isoformat()}
        self._d.letter("pipeline", reason, f"{raw.sensor_id}/{raw.device_id} {raw.variable}: {detail}",
                       sensor_id=raw.sensor_id, reading=reading)


class Daemon:
    """aqnet's running daemon; `run()` until `stop()`."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or settings.clock.clock()
        self.metrics = Metrics.create(registry or CollectorRegistry())
        self.tz = ZoneInfo(settings.network.timezone)
        self.network: list[Sensor] = settings.network.configured_sensors()  # the registry's seed
        self.protocol_of = {d.id: d.protocol for s in self.network for d in s.devices}
        self.last_seen: dict[str, datetime] = {}
        self.readings_total = 0
        self._letters: AsyncConnectionPool | None = None
        self._letter_tasks: set[asyncio.Task[None]] = set()
        self.mqtt_status: Callable[[], dict[str, Any]] = dict
        self.started_at = self.clock()
        self._stop = asyncio.Event()
        self.http_port: int | None = None
        self.follower: RegistryFollower | None = None

    def status(self) -> dict[str, Any]:
        """The `/status` document: per-sensor last-seen times and counts."""
        return {
            "started_at": self.started_at.isoformat(),
            "sensors_configured": len(self.network),
            "sensors_reporting": len(self.last_seen),
            "readings_total": self.readings_total,
            "mqtt": self.mqtt_status(),
            "registry": {"version": self.follower.version if self.follower else None,
                         "loaded_at": (self.follower.loaded_at.isoformat()
                                       if self.follower and self.follower.loaded_at else None)},
            "last_seen": {s.id: (self.last_seen[s.id].isoformat() if s.id in self.last_seen else None)
                          for s in self.network},
        }

    def letter(self, source: str, reason: str, detail: str, **fields: Any) -> None:
        """Record a dead letter in the background (never blocks ingest; a failure to record is logged)."""
        if self._letters is None:
            return

        async def record() -> None:
            try:
                async with self._letters.connection() as conn:
                    await deadletter.record(conn, source, reason, detail, **fields)
            except Exception as exc:  # the database may be down: the log line keeps it
                log.error("dead letter not recorded (%s, %s): %s; %s", source, reason, detail, exc)

        task = asyncio.get_running_loop().create_task(record())
        self._letter_tasks.add(task)
        task.add_done_callback(self._letter_tasks.discard)

    def _poll_interval(self, sensor_id: str) -> float:
        station = self.settings.network.stations.get(sensor_id)
        return station.poll_interval_s if station and station.poll_interval_s else self.settings.modbus.poll_interval_s

    def stop(self) -> None:
        """Ask the daemon to stop (flushes, then returns from `run`)."""
        self._stop.set()

    async def run(self) -> None:
        """Start every stage, run until `stop()`, then stop them in reverse order."""
        s = self.settings
        # alert delivery settings are checked before anything starts (ChannelConfigError names channel and file)
        signing_key = load_or_create_key(Path(s.alerts.signing_key_file))
        channels = build_channels(s, signing_key)
        rules = load_rules(s)
        dispatcher: Dispatcher | None = None
        if s.database.migrate_on_start:
            with psycopg.connect(s.database.url, autocommit=False) as conn:
                applied = migrate(conn)
                if applied:
                    log.info("database migrations applied: %s", ", ".join(applied))
        pool = AsyncConnectionPool(s.database.url, min_size=s.database.pool_min_size,
                                   max_size=s.database.pool_max_size, open=False,
                                   kwargs={"application_name": "aqnet"},
                                   # give up a reconnect series soon: the next request starts a fresh one at
                                   # once, so the database is found again within ~retry_s of its return
                                   reconnect_timeout=s.storage.unreachable_after_s)
        await pool.open(wait=True, timeout=30)
        self._letters = pool
        # the dispatcher owns the channels from here on (it closes them); with no channel it still keeps the
        # alert gauges current
        dispatcher = build_dispatcher(pool, s, channels, signing_key, rules=rules, clock=self.clock)
        tasks: list[asyncio.Task[Any]] = []
        links = LinkRegistry(timeout_s=s.modbus.timeout_s)  # one owner per TCP gateway or serial bus
        subscriber: MqttSubscriber | None = None
        pollers: PollerSupervisor | None = None
        spool: Spool | None = None
        sink: ForwardingSink | None = None
        try:
            spool = Spool(Path(s.storage.spool_dir), max_bytes=s.storage.spool_max_bytes,
                          near_full_fraction=s.storage.spool_near_full_fraction)
            await upsert_registry(pool, self.network)
            writer = TimescaleWriter(pool)
            observer = _Observer(self)
            sink = ForwardingSink(writer, spool, clock=self.clock, retry_s=s.storage.replay_retry_s,
                                  unreachable_after_s=s.storage.unreachable_after_s, on_replayed=observer.replayed)
            self._spool_metrics(sink)
            tasks.append(asyncio.create_task(sink.replay(), name="spool-replay"))
            async with pool.connection() as conn:  # CalibrationError here: refuse to start
                snapshot = await load_snapshot(conn, now=self.clock(), lookback_s=s.registry.maintenance_lookback_s)
            # the registry's books, ranges and conditions are put in by `live.apply(snapshot)` below
            pipeline = Pipeline(sink, conditions=ConditionsBook(()), observer=observer, clock=self.clock,
                                max_batch=s.ingest.batch_max, max_age_s=s.ingest.batch_max_age_s,
                                queue_max=s.ingest.queue_max, skew_tolerance_s=s.ingest.clock_skew_tolerance_s)
            pipeline_task = asyncio.create_task(pipeline.run(), name="pipeline")

            async def reject(rej: Rejection) -> None:
                self.metrics.rejected.labels(rej.source, rej.reason).inc()
                async with pool.connection() as conn:
                    await deadletter.record(conn, rej.source, rej.reason, rej.detail, sensor_id=rej.sensor_id,
                                            payload=rej.payload, topic=rej.topic,
                                            fmt="airrohr" if rej.source == "http" else None)

            loop = asyncio.get_running_loop()
            intake = Intake((), tz=self.tz)
            last_message = [time.monotonic()]

            def message_seen(message: Any) -> None:
                last_message[0] = time.monotonic()
                if getattr(message, "dup", False):
                    self.metrics.mqtt_redelivered.inc()


            def client_factory(on_message: Callable[[Any], None]) -> MqttSubscriberClient:
                return MqttSubscriberClient(
                    s.mqtt.url, client_id=s.mqtt.client_id, topics=list(s.mqtt.topics), loop=loop,
                    on_message=on_message, receive_maximum=s.mqtt.receive_maximum,
                    session_expiry_s=s.mqtt.session_expiry_s, clock=self.clock, protocol=s.mqtt.protocol,
                    ca_file=s.mqtt.ca_file, cert_file=s.mqtt.cert_file, key_file=s.mqtt.key_file,
                    reconnect_min_s=s.mqtt.reconnect_min_s, reconnect_max_s=s.mqtt.reconnect_max_s,
                    on_connection=lambda up: self.metrics.mqtt_connected.set(1 if up else 0))

            subscriber = MqttSubscriber(
                client_factory, intake, submit=pipeline.submit, reject=reject, on_message_seen=message_seen,
                on_unmapped=lambda sid, n: self.metrics.unmapped_channels.labels(sid).inc(n))

            async def airrohr_post(body: bytes, x_sensor: str | None) -> tuple[int, dict[str, Any]]:
                where = f"POST /intake/airrohr (X-Sensor {x_sensor or '-'})"
                try:
                    resolved = intake.resolve(where, body, None, fmt="airrohr", received_at=self.clock())
                except (PayloadError, UnknownDeviceError) as exc:
                    sensor_id = getattr(exc, "sensor_id", None)
                    log.warning("sensor %s: airrohr HTTP intake rejected (%s): %s", sensor_id or x_sensor or "?",
                                exc.reason, exc.detail)
                    await reject(Rejection("http", where, sensor_id, exc.reason, exc.detail, body))
                    return (404 if exc.reason == "unknown_device" else 400), {"error": exc.reason,
                                                                             "detail": exc.detail}
                durable: asyncio.Future[None] = loop.create_future()
                await pipeline.submit(list(resolved.readings),
                                      lambda: durable.done() or durable.set_result(None))
                try:
                    await asyncio.wait_for(asyncio.shield(durable), timeout=30)
                except TimeoutError:
                    return 503, {"error": "not_durable_yet", "detail": "the database is slow; send again"}
                return 200, {"sensor_id": resolved.sensor_id, "readings": len(resolved.readings)}

            tasks.append(asyncio.create_task(subscriber.run(), name="mqtt"))
            client = subscriber.client
            self.metrics.mqtt_silence.set_function(lambda: time.monotonic() - last_message[0])
            self.metrics.mqtt_attempts.set_function(lambda: client.connection_attempts)
            self.mqtt_status = lambda: dataclasses.asdict(client.status())

            def on_gap(gap: Gap) -> None:
                self.metrics.read_failures.labels(gap.sensor_id, gap.reason).inc()

            def on_status(event: StatusEvent) -> None:
                up = self.metrics.device_up.labels(event.sensor_id, event.device_id)
                if event.recovered:
                    up.set(1)
                    return
                up.set(0)
                self.metrics.modbus_status.labels(event.sensor_id, event.device_id, event.reason).inc()
                if event.first_failure:  # one dead letter per outage, not one per poll
                    where = f"{event.endpoint} unit {event.unit_id}"
                    if event.table is not None:
                        where += f" {event.table} {event.address}×{event.count}"
                    self.letter("modbus", event.reason, f"{event.device_id} ({where}): {event.detail}",
                                sensor_id=event.sensor_id, endpoint=where)

            def on_modbus_readings(readings: list[RawReading]) -> bool:
                # a poller never waits on ingest: when it is full the readings are counted as dropped and the
                # poller reads them back from the logger's history once ingest accepts again
                if not pipeline.try_submit(readings):
                    self.metrics.dropped.labels("modbus", readings[0].sensor_id).inc(len(readings))
                    return False
                backfilled = sum(1 for r in readings if r.time_source == "device")
                if backfilled:
                    self.metrics.backfilled.labels(readings[0].sensor_id).inc(backfilled)
                return True

            def make_poller(target: PollTarget) -> StationPoller:
                # ValueError (a profile that did not load, a link conflict): the supervisor logs it and skips
                return StationPoller(target.sensor, links.link_for, live.profiles, on_readings=on_modbus_readings,
                                     on_gap=on_gap, on_status=on_status, clock=self.clock,
                                     interval_s=target.interval_s,
                                     real_seconds=getattr(self.clock, "real_seconds", None))

            pollers = PollerSupervisor(make_poller)
            live = LiveNetwork(pipeline=pipeline, intake=intake, pollers=pollers, links=links,
                               interval_of=self._poll_interval, microsensor_cadence_s=s.network.microsensor_cadence_s,
                               mqtt_topics=s.mqtt.topics)

            async def apply(snapshot: RegistrySnapshot) -> None:
                # the daemon's own view first, so the metrics of a new device's first readings name its protocol
                self.network = list(snapshot.network)
                self.protocol_of = {d.id: d.protocol for x in self.network for d in x.devices}
                await live.apply(snapshot)

            await apply(snapshot)
            self.follower = RegistryFollower(pool, apply, refresh_s=s.registry.refresh_s,
                                             lookback_s=s.registry.maintenance_lookback_s, clock=self.clock,
                                             version=snapshot.version)
            tasks.append(asyncio.create_task(self.follower.run(), name="registry"))
            scheduler = AsyncIOScheduler(timezone=self.tz)
            # expected sample cadence per device, for the hourly completeness rule: `live` updates this mapping in
            # place on each registry change, and the averages job reads it each time it runs
            add_stage_jobs(scheduler, s, clock=self.clock, tz=self.tz, cadences=live.cadences, rules=rules,
                           dispatcher=dispatcher, metrics=self.metrics, pool=pool)

            async def calibrations_job() -> None:
                try:
                    async with pool.connection() as conn:
                        book = await load_calibration_book(conn)
                except (psycopg.OperationalError, CalibrationError) as exc:
                    log.error("calibrations not refreshed (keeping the ones in force): %s", exc)
                    return
                pipeline.calibrations = book

            scheduler.add_job(calibrations_job, "interval", seconds=s.ingest.calibration_refresh_s,
                              id="calibrations", max_instances=1, coalesce=True)

            async def prune_dead_letters_job() -> None:
                async with pool.connection() as conn:
                    deleted = await deadletter.prune(conn, s.dead_letters.max_rows)
                if deleted:
                    log.info("dead letters: pruned %d beyond the bound of %d", deleted, s.dead_letters.max_rows)

            scheduler.add_job(prune_dead_letters_job, "interval", seconds=s.dead_letters.prune_every_s,
                              id="dead-letters-prune", max_instances=1, coalesce=True, next_run_time=self.clock())
            scheduler.start()

            app = create_app(self.metrics.registry, self.status, airrohr=airrohr_post,
                             api=api_router(pool, clock=self.clock, signing_key=signing_key,
                                            tz_name=s.network.timezone, language=s.alerts.language))
            server = uvicorn.Server(uvicorn.Config(app, host=s.http.host, port=s.http.port, log_level="warning",
                                                   lifespan="off"))
            tasks.append(asyncio.create_task(server.serve(), name="http"))
            log.info("aqnet daemon running: %d sensors, metrics on http://%s:%d/metrics", len(self.network),
                     s.http.host, s.http.port)
            self.metrics.queue_length.set_function(lambda: pipeline.queue_length)

            await self._stop.wait()
            log.info("aqnet daemon stopping")
            scheduler.shutdown(wait=False)
            server.should_exit = True
            for t in tasks:
                if t.get_name() != "http":
                    t.cancel()
            pollers.cancel()
            await asyncio.gather(*tasks, *pollers.tasks, return_exceptions=True)
            pipeline.close()
            await pipeline_task  # the last acks go out on the still-open MQTT connection
            await sink.close()  # everything accepted is now in the database or in the spool
        finally:
            for t in tasks:
                t.cancel()
            if pollers is not None:
                pollers.cancel()
            if subscriber is not None:
                await asyncio.to_thread(subscriber.client.stop)
            with contextlib.suppress(Exception):
                await links.close()
            if sink is not None:
                await sink.close()
            if spool is not None:
                spool.close()
            if dispatcher is not None:  # after the scheduler: no delivery round is using the channels
                await dispatcher.close()
            else:
                for failure in await close_channels(channels):
                    log.warning("%s", failure)
            if self._letter_tasks:
                await asyncio.wait(self._letter_tasks, timeout=5)
            self._letters = None
            await pool.close()
        log.info("aqnet daemon stopped")

    def _spool_metrics(self, sink: ForwardingSink) -> None:
        m = self.metrics
        m.spool_bytes.set_function(lambda: sink.stats().spool.pending_bytes)
        m.spool_batches.set_function(lambda: sink.stats().spool.pending_batches)
        m.spool_readings.set_function(lambda: sink.stats().spool.pending_readings)
        m.spool_near_full.set_function(lambda: float(sink.stats().spool.near_full))
        m.spool_full.set_function(lambda: float(sink.stats().spool.full))
        m.spool_disk_full.set_function(lambda: float(sink.stats().spool.disk_full))
        for state in ("direct", "spooling", "replaying"):
            m.forwarding_state.labels(state).set_function(lambda state=state: float(sink.state == state))


def run_daemon(settings: Settings) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT; return the exit code."""
    async def main() -> None:
        daemon = Daemon(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    try:
        asyncio.run(main())
    except ChannelConfigError as exc:  # nothing was started
        for line in exc.errors:
            log.error("invalid alert delivery settings: %s", line)
        return 2
    return 0
