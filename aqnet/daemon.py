"""The composition root: builds every stage from the settings, starts them in dependency order and stops them in
reverse order on SIGTERM/SIGINT after flushing. The only module that wires stages together.

The network comes from the registry: the configured sensors are seeded into it (`upsert_registry`), then what
the drivers poll and decode is what `load_network` says, followed live (`aqnet.supervisor`): a registry change
(new or retired device, move, swap, calibration, maintenance window) reaches the running stages within
`registry.refresh_s`, without a restart.

Every long-running task runs under `aqnet.tasks.TaskSupervisor`: one that dies is logged with its traceback and
restarted with backoff (MQTT intake, HTTP server, spool replay, registry follower; station pollers in
`aqnet.supervisor`), or, when it cannot be restarted (the pipeline, the scheduler: `aqnet.scheduler_watch`) or
died too often, the daemon stops, flushes, and `run()` raises `TaskFailedError` (`aqnet run` exits 1 so that
systemd or the container starts it again). `/healthz` is liveness and `/readyz` readiness (`aqnet.health`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
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
    load_alert_keys,
)
from aqnet.api import api_router
from aqnet.config import Settings
from aqnet.health import CountedSink, HealthMonitor
from aqnet.http import LISTENERS, create_api_app, create_intake_app, create_internal_app
from aqnet.http_auth import Authenticator
from aqnet.http_limits import TrustedProxies
from aqnet.http_server import server_config
from aqnet.live_network import LiveNetwork, RegistryFollower, RegistrySnapshot, load_snapshot
from aqnet.metrics import Metrics
from aqnet.preflight import EXIT_REFUSED, StartupRefused, check_alert_channels, watch_subscriptions
from aqnet.schedule import add_stage_jobs, load_rules
from aqnet.scheduler_watch import SchedulerWatch
from aqnet.supervisor import PollerSupervisor, PollTarget
from aqnet.tasks import RestartPolicy, TaskSupervisor
from ingest.calibration import CalibrationError
from ingest.letter import Letter
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.plausibility import TimeWindow
from ingest.reading import Reading
from sensors.clock import Clock
from sensors.delivery import http_delivery
from sensors.modbus.link import LinkRegistry
from sensors.modbus.poller import StationPoller, StatusEvent
from sensors.mqtt.client import MqttSubscriberClient
from sensors.mqtt.directory import UnknownDeviceError
from sensors.mqtt.payloads import PayloadError
from sensors.mqtt.subscriber import Intake, MqttSubscriber, Rejection, with_delivery
from sensors.reading import Gap, RawReading
from sensors.redact import redact_doc
from sensors.sensor import Sensor
from storage import deadletter
from storage.forwarding import ForwardingSink, Spooled
from storage.migrate import migrate
from storage.registry import upsert_registry
from storage.registry.calibrations import load_calibration_book
from storage.spool import Spool
from storage.writer import TimescaleWriter

__all__ = ["Daemon", "TaskFailedError", "run_daemon"]

log = logging.getLogger(__name__)


class _Observer:
    """Pipeline observer: metrics and per-sensor last-seen (refused readings travel as letters in the batch)."""

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
        # the pipeline keeps a reading that cannot be normalised as a dead letter, durably with its batch
        protocol = self._d.protocol_of.get(raw.device_id, "unknown")
        self._d.metrics.rejected.labels(protocol, reason).inc()


class TaskFailedError(RuntimeError):
    """A supervised task died for good: the daemon stopped (after flushing) and must be started afresh."""

    def __init__(self, task: str, reason: str) -> None:
        super().__init__(f"task {task} is down for good: {reason}")
        self.task = task
        self.reason = reason


class Daemon:
    """aqnet's running daemon; `run()` until `stop()`, or until a supervised task dies for good
    (`TaskFailedError`)."""

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
        self.mqtt_status: Callable[[], dict[str, Any]] = dict
        self.started_at = self.clock()
        self._stop = asyncio.Event()
        self.follower: RegistryFollower | None = None
        self.refused: StartupRefused | None = None  #: the broker refused what the daemon needs (aqnet.preflight)
        self.http_servers: dict[str, uvicorn.Server] = {}  #: listener → its server now (a new one per restart)
        self.health: Callable[[], dict[str, Any]] = dict
        self.failure: tuple[str, str] | None = None  #: (task, reason) that stopped the daemon

    def status(self) -> dict[str, Any]:
        """The `/status` document: per-sensor last-seen times and counts; secrets masked (sensors.redact: an
        error quoted in it may hold a URL)."""
        return redact_doc({  # type: ignore[return-value]
            "started_at": self.started_at.isoformat(),
            "sensors_configured": len(self.network),
            "sensors_reporting": len(self.last_seen),
            "readings_total": self.readings_total,
            "mqtt": self.mqtt_status(),
            "health": self.health(),
            "registry": {"version": self.follower.version if self.follower else None,
                         "loaded_at": (self.follower.loaded_at.isoformat()
                                       if self.follower and self.follower.loaded_at else None)},
            "last_seen": {s.id: (self.last_seen[s.id].isoformat() if s.id in self.last_seen else None)
                          for s in self.network},
        })

    def _poll_interval(self, sensor_id: str) -> float:
        station = self.settings.network.stations.get(sensor_id)
        return station.poll_interval_s if station and station.poll_interval_s else self.settings.modbus.poll_interval_s

    def stop(self) -> None:
        """Ask the daemon to stop (flushes, then returns from `run`)."""
        self._stop.set()

    def _task_state(self, name: str, up: bool) -> None:
        self.metrics.task_up.labels(name).set(1 if up else 0)
        self.metrics.task_restarts.labels(name)  # the series exists (0) from the task's start

    def _task_failed(self, name: str, reason: str) -> None:
        if self.failure is None:
            self.failure = (name, reason)
        log.critical("aqnet daemon stopping: task %s is down for good (%s); exiting non-zero after flushing",
                     name, reason)
        self._stop.set()

    async def run(self) -> None:
        """Start every stage, run until `stop()`, then stop them in reverse order."""
        s = self.settings
        # alert delivery settings are checked before anything starts (ChannelConfigError names channel and file)
        keys = load_alert_keys(s)  # the link key is never a webhook's (docs/security.md)
        channels = build_channels(s, keys.webhook)
        try:
            await check_alert_channels(channels)  # a refused alert topic: StartupRefused, before anything starts
        except StartupRefused:
            await close_channels(channels)
            raise
        rules = load_rules(s)
        dispatcher: Dispatcher | None = None
        if s.database.migrate_on_start:
            with psycopg.connect(s.database.url, autocommit=False) as conn:
                applied = migrate(conn)
                if applied:
                    log.info("database migrations applied: %s", ", ".join(applied))
        pool = AsyncConnectionPool(s.database.url, min_size=s.database.pool_min_size,
                                   max_size=s.database.pool_max_size, timeout=s.database.pool_timeout_s,
                                   open=False,
                                   kwargs={"application_name": "aqnet"},
                                   # give up a reconnect series soon: the next request starts a fresh one at
                                   # once, so the database is found again within ~retry_s of its return
                                   reconnect_timeout=s.storage.unreachable_after_s)
        await pool.open(wait=True, timeout=30)
        # the dispatcher owns the channels from here on (it closes them); with no channel it still keeps the
        # alert gauges current
        dispatcher = build_dispatcher(pool, s, channels, keys.link, rules=rules, clock=self.clock)
        sv = s.supervision
        policy = RestartPolicy(min_s=sv.restart_min_s, max_s=sv.restart_max_s, jitter=sv.restart_jitter,
                               max_restarts=sv.max_restarts, window_s=sv.restart_window_s)
        tasks = TaskSupervisor(policy, on_state=self._task_state,
                               on_restart=lambda name: self.metrics.task_restarts.labels(name).inc(),
                               on_fatal=self._task_failed)
        links = LinkRegistry(timeout_s=s.modbus.timeout_s)  # one owner per TCP gateway or serial bus
        subscriber: MqttSubscriber | None = None
        subscribed: asyncio.Task[None] | None = None
        pollers: PollerSupervisor | None = None
        spool: Spool | None = None
        sink: ForwardingSink | None = None
        auth_pool: AsyncConnectionPool[Any] | None = None
        try:
            spool = Spool(Path(s.storage.spool_dir), max_bytes=s.storage.spool_max_bytes,
                          near_full_fraction=s.storage.spool_near_full_fraction)
            await upsert_registry(pool, self.network)
            writer = TimescaleWriter(pool)
            observer = _Observer(self)
            sink = ForwardingSink(writer, spool, clock=self.clock, retry_s=s.storage.replay_retry_s,
                                  unreachable_after_s=s.storage.unreachable_after_s, on_replayed=observer.replayed)
            self._spool_metrics(sink)
            tasks.start("spool-replay", lambda: sink.replay())
            async with pool.connection() as conn:  # CalibrationError here: refuse to start
                snapshot = await load_snapshot(conn, now=self.clock(), lookback_s=s.registry.maintenance_lookback_s)
            # the registry's books, ranges and conditions are put in by `live.apply(snapshot)` below
            written = CountedSink(sink)  # liveness: each finished write attempt is progress
            pipeline = Pipeline(written, conditions=ConditionsBook(()), observer=observer, clock=self.clock,
                                max_batch=s.ingest.batch_max, max_age_s=s.ingest.batch_max_age_s,
                                queue_max=s.ingest.queue_max, skew_tolerance_s=s.ingest.clock_skew_tolerance_s,
                                time_window=TimeWindow(s.ingest.device_time_past_days, s.ingest.device_time_future_s))
            # the pipeline's batcher and unacknowledged envelopes cannot be rebuilt: if it dies, the daemon exits
            tasks.start("pipeline", lambda: pipeline.run(), restart=False)

            async def reject(rej: Rejection, ack: Callable[[], None]) -> None:
                # the refused message is a dead letter in the next batch, durable (database or spool) before `ack`
                self.metrics.rejected.labels(rej.source, rej.reason).inc()
                letter = Letter(rej.source, rej.reason, rej.detail, self.clock(), sensor_id=rej.sensor_id,
                                payload=rej.payload, topic=rej.topic, fmt="airrohr" if rej.source == "http" else None)
                await pipeline.submit([], ack, letters=[letter])

            async def until_durable(submit: Callable[[Callable[[], None]], Awaitable[None]]) -> bool:
                """Submit with an ack that resolves a future; True once durable, False after the HTTP deadline."""
                durable: asyncio.Future[None] = loop.create_future()
                await submit(lambda: durable.done() or durable.set_result(None))
                try:
                    async with asyncio.timeout(s.http.durable_timeout_s):
                        await asyncio.shield(durable)
                except TimeoutError:
                    return False
                return True

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
                max_pending=s.mqtt.receive_maximum,
                on_unmapped=lambda sid, n: self.metrics.unmapped_channels.labels(sid).inc(n))

            async def refuse(where: str, sensor_id: str | None, reason: str, detail: str, body: bytes,
                             code: int, answer: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                # acknowledged only once its dead letter is durable
                rejection = Rejection("http", where, sensor_id, reason, detail, body)
                if not await until_durable(lambda ack: reject(rejection, ack)):
                    return 503, not_durable
                return code, answer

            async def airrohr_post(body: bytes, sender: str, x_sensor: str | None) -> tuple[int, dict[str, Any]]:
                # `sender`: the sensor whose HTTP credentials authenticated this POST (aqnet.http_auth)
                where = f"POST /intake/airrohr by {sender} (X-Sensor {x_sensor or '-'})"
                try:
                    resolved = intake.resolve(where, body, None, fmt="airrohr", received_at=self.clock())
                except (PayloadError, UnknownDeviceError) as exc:
                    sensor_id = getattr(exc, "sensor_id", None) or sender
                    log.warning("sensor %s: airrohr HTTP intake rejected (%s): %s", sensor_id, exc.reason, exc.detail)
                    return await refuse(where, sensor_id, exc.reason, exc.detail, body,
                                        404 if exc.reason == "unknown_device" else 400,
                                        {"error": exc.reason, "detail": exc.detail})
                # the body names its device (esp8266id): it must be the authenticated sensor's own HTTP device,
                # else one sensor's credentials would write as any other, MQTT ones included
                protocols = {self.protocol_of.get(r.device_id, "unknown") for r in resolved.readings}
                if resolved.sensor_id != sender or protocols - {"http"}:
                    detail = (f"credentials of sensor {sender}, body of sensor {resolved.sensor_id} "
                              f"(device protocols {', '.join(sorted(protocols)) or '-'})")
                    log.warning("sensor %s: airrohr HTTP intake refused (identity_mismatch): %s", sender, detail)
                    return await refuse(where, sender, "identity_mismatch", detail, body, 403,
                                        {"error": "forbidden", "detail": "the body is not this sensor's own HTTP "
                                         "device's: only a sensor's own readings are accepted"})
                # a retried POST (after a 503, or by a proxy) is recognised by its body within the window
                resolved = with_delivery(resolved, http_delivery(resolved.sensor_id, "/intake/airrohr", body,
                                                                 window_s=s.http.redelivery_window_s))
                if not await until_durable(lambda ack: pipeline.submit(list(resolved.readings), ack)):
                    return 503, not_durable
                return 200, {"sensor_id": resolved.sensor_id, "readings": len(resolved.readings)}

            not_durable = {"error": "not_durable_yet", "detail": "the database is slow; send again"}

            tasks.start("mqtt", lambda: subscriber.run())
            client = subscriber.client
            # one-shot: the first subscription outcome (a refusal stops the daemon: aqnet.preflight)
            subscribed = asyncio.create_task(watch_subscriptions(client, self._refuse), name="mqtt-subscribed")
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
                    detail = f"{event.device_id} ({where}): {event.detail}"
                    letter = Letter("modbus", event.reason, detail, self.clock(), sensor_id=event.sensor_id,
                                    endpoint=where)
                    if not pipeline.try_submit([], letters=[letter]):  # ingest full: the log line keeps it
                        log.error("dead letter not queued (ingest full): modbus %s %s", event.reason, detail)

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

            pollers = PollerSupervisor(make_poller,
                                       policy=dataclasses.replace(policy, max_restarts=None),
                                       on_state=self._task_state,
                                       on_restart=lambda name: self.metrics.task_restarts.labels(name).inc(),
                                       on_removed=self.metrics.task_up.remove)
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
            follower = self.follower
            tasks.start("registry", lambda: follower.run())
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
                    deleted = await deadletter.prune(conn, s.dead_letters.max_rows, max_bytes=s.dead_letters.max_bytes,
                                                     max_age=timedelta(days=s.dead_letters.max_age_days))
                if deleted:
                    log.info("dead letters: pruned %d beyond the bounds (%d letters, %d bytes, %g days)", deleted,
                             s.dead_letters.max_rows, s.dead_letters.max_bytes, s.dead_letters.max_age_days)

            scheduler.add_job(prune_dead_letters_job, "interval", seconds=s.dead_letters.prune_every_s,
                              id="dead-letters-prune", max_instances=1, coalesce=True, next_run_time=self.clock())
            scheduler.start()
            # the scheduler and its jobs (the alert dispatcher's `deliveries` among them) cannot be restarted
            # from outside: down means the daemon exits (aqnet.scheduler_watch)
            watch = SchedulerWatch(scheduler, stuck_s=sv.job_stuck_s, error_limit=sv.job_error_limit)
            tasks.start("scheduler", lambda: watch.run(), restart=False)

            async def probe_database() -> None:
                async with pool.connection(timeout=sv.readiness_timeout_s) as conn:
                    await conn.execute("SELECT 1")

            # pollers are left out of liveness: one station's crash loop must not restart the whole daemon
            # (they show in aqnet_task_up and /status)
            monitor = HealthMonitor(tasks.down, probe_database, stall_s=sv.intake_stall_s,
                                    probe_timeout_s=sv.readiness_timeout_s)
            monitor.watch("mqtt-intake", pending=lambda: subscriber.pending, advanced=lambda: subscriber.handled,
                          blocked=lambda: pipeline.queue_length >= s.ingest.queue_max)
            monitor.watch("pipeline", pending=lambda: pipeline.queue_length, advanced=lambda: written.attempts)
            self.health = lambda: {**monitor.liveness().body(), "pollers_down": pollers.down()}

            # credentials are looked up on their own small pool: a flood of made-up ones never starves ingest
            auth_pool = AsyncConnectionPool(s.database.url, min_size=1, max_size=s.http.auth_pool_size,
                                            timeout=s.database.pool_timeout_s, open=False,
                                            kwargs={"application_name": "aqnet-auth"},
                                            reconnect_timeout=s.storage.unreachable_after_s)
            await auth_pool.open(wait=False)
            auth = Authenticator(auth_pool, trusted_proxies=TrustedProxies(s.http.trusted_proxies),
                                 failures_per_minute=s.http.auth_failures_per_minute, cache_s=s.http.auth_cache_s)
            api_app = create_api_app(api_router(pool, clock=self.clock, signing_key=keys.link,
                                                tz_name=s.network.timezone, language=s.alerts.language, auth=auth))
            apps = {"intake": create_intake_app(airrohr_post, auth), "api": api_app,
                    "internal": create_internal_app(self.metrics.registry, self.status, api_app=api_app,
                                                    liveness=monitor.liveness, readiness=monitor.readiness)}
            listeners = s.http.listeners()
            assert set(listeners) == set(apps) == set(LISTENERS), "every listener needs its app (aqnet.http)"

            def serve_http(name: str) -> Callable[[], Awaitable[None]]:
                async def serve() -> None:  # a fresh server per (re)start: a uvicorn.Server is not reusable
                    server = self.http_servers[name] = uvicorn.Server(server_config(apps[name], listeners[name]))
                    await server.serve()
                return serve

            for name in LISTENERS:  # one supervised task per listener
                tasks.start(f"http-{name}", serve_http(name))
            log.info("aqnet daemon running: %d sensors; HTTP %s", len(self.network), ", ".join(
                f"{n} on {'https' if v.tls_cert_file else 'http'}://{v.host}:{v.port}" for n, v in listeners.items()))
            self.metrics.queue_length.set_function(lambda: pipeline.queue_length)

            await self._stop.wait()
            log.info("aqnet daemon stopping")
            tasks.stopping()
            scheduler.shutdown(wait=False)
            for server in self.http_servers.values():
                server.should_exit = True
            # each HTTP server ends by itself (should_exit), unless it is waiting for a restart
            http_tasks = [f"http-{name}" for name in LISTENERS]
            stopped = tasks.cancel(except_=("pipeline", *(t for t in http_tasks if t not in tasks.down())))
            pollers.cancel()
            await asyncio.gather(*stopped, *pollers.tasks, *(tasks.task(t) for t in http_tasks),
                                 return_exceptions=True)
            pipeline.close()
            await tasks.task("pipeline")  # the last acks go out on the still-open MQTT connection
            await sink.close()  # everything accepted is now in the database or in the spool
        finally:
            tasks.cancel()
            if subscribed is not None:
                subscribed.cancel()
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
            if auth_pool is not None:
                await auth_pool.close()
            await pool.close()
        if self.failure is not None:
            raise TaskFailedError(*self.failure)
        log.info("aqnet daemon stopped")
        if self.refused is not None:
            raise self.refused

    def _refuse(self, error: StartupRefused) -> None:
        """The broker refused the daemon's subscription: stop, and make `run` raise `error`."""
        log.error("%s", error)
        self.refused = error
        self.stop()

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
    except StartupRefused as exc:  # the broker refused a subscription or the alert topic: never run deaf
        log.error("aqnet daemon not started: %s", exc)
        return EXIT_REFUSED
    except TaskFailedError as exc:  # stopped and flushed: systemd (Restart=on-failure) or the container restarts
        log.critical("aqnet daemon exits with status 1: %s", exc)
        return 1
    return 0
