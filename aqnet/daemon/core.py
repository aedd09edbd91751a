"""The daemon: its start steps in dependency order, its stop in reverse order after flushing. Shell (aqnet), I/O.

The composition root: builds every stage from the settings, starts them in dependency order and stops them in
reverse order on SIGTERM/SIGINT after flushing. The only module (with its step modules) that wires stages together.

`Daemon.run` is a sequence of per-stage start steps under one `contextlib.AsyncExitStack`: each step builds its
stage, starts its tasks and pushes its cleanup, so whatever started is closed in reverse order, on a clean stop as
after a failed start. A clean stop first drains (the tasks end, pollers are cancelled), then flushes (the pipeline
ends, its last acks go out, the forwarding sink puts everything accepted into the database or the spool), and
only then does the exit stack close clients, the spool, links, the alert channels and the pools.

The network comes from the registry: the configured sensors are seeded into it (`upsert_registry`), then what
the drivers poll and decode is what `load_network` says, followed live (`storage.live_network`): a registry
change (new or retired device, move, swap, calibration, maintenance window) reaches the running stages within
`registry.refresh_s`, without a restart.

Every long-running task runs under `aqnet.tasks.TaskSupervisor`: one that dies is logged with its traceback and
restarted with backoff (MQTT intake, HTTP server, spool replay, registry follower; station pollers in
`sensors.modbus.supervisor`), or, when it cannot be restarted (the pipeline, the scheduler: `aqnet.scheduler_watch`)
or died too often, the daemon stops, flushes, and `run()` raises `TaskFailedError` (`aqnet run` exits 1 so that
systemd or the container starts it again). `/healthz` is liveness and `/readyz` readiness (`aqnet.health`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts.rules.model import Rule
from aqnet.alert_channels import (
    AlertKeys,
    ChannelConfigError,
    Channels,
    build_channels,
    build_dispatcher,
    close_channels,
    load_alert_keys,
)
from aqnet.config import Settings
from aqnet.daemon.intake import start_mqtt_intake, start_pollers
from aqnet.daemon.jobs import start_scheduler
from aqnet.daemon.observer import PipelineMetrics, TaskMetrics
from aqnet.daemon.serving import serve_http, watch_health
from aqnet.daemon.wiring import Wiring
from aqnet.daemon.writing import open_database, open_storage, start_pipeline
from aqnet.http import LISTENERS
from aqnet.metrics import Metrics
from aqnet.preflight import EXIT_REFUSED, StartupRefused, check_alert_channels
from aqnet.schedule import load_rules
from aqnet.tasks import TaskSupervisor
from ingest.intake import IntakeSubmitter
from sensors.clock import Clock
from sensors.modbus.link import LinkRegistry
from sensors.modbus.supervisor import PollerSupervisor
from sensors.mqtt.subscriber import Intake
from sensors.redact import redact_doc
from sensors.restart import RestartPolicy
from sensors.sensor import Sensor
from storage.live_network import LiveNetwork, RegistryFollower, RegistrySnapshot, load_snapshot

__all__ = ["Daemon", "TaskFailedError", "run_daemon"]

log = logging.getLogger(__name__)


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
        doc = redact_doc({
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
        assert isinstance(doc, dict)
        return doc

    def poll_interval(self, sensor_id: str) -> float:
        """A station's poll interval (s): its own, else `modbus.poll_interval_s`."""
        station = self.settings.network.stations.get(sensor_id)
        return station.poll_interval_s if station and station.poll_interval_s else self.settings.modbus.poll_interval_s

    def stop(self) -> None:
        """Ask the daemon to stop (flushes, then returns from `run`)."""
        self._stop.set()

    def _task_failed(self, name: str, reason: str) -> None:
        if self.failure is None:
            self.failure = (name, reason)
        log.critical("aqnet daemon stopping: task %s is down for good (%s); exiting non-zero after flushing",
                     name, reason)
        self._stop.set()

    def _refuse(self, error: StartupRefused) -> None:
        """The broker refused the daemon's subscription: stop, and make `run` raise `error`."""
        log.error("%s", error)
        self.refused = error
        self.stop()

    def _count(self, n: int) -> None:
        self.readings_total += n

    async def run(self) -> None:
        """Start every stage, run until `stop()`, then drain, flush and close them in reverse order."""
        s = self.settings
        async with contextlib.AsyncExitStack() as stack:
            keys, channels, rules = await self._check_alerts()
            pool = await open_database(stack, s)
            # the dispatcher owns the channels from here on (it closes them, after the scheduler stopped); with no
            # channel it still keeps the alert gauges current
            dispatcher = build_dispatcher(pool, s, channels, keys.link, rules=rules, clock=self.clock)
            stack.push_async_callback(dispatcher.close)
            w = Wiring(s, self.clock, self.metrics, stack, self._start_supervision(stack))
            links = LinkRegistry(timeout_s=s.modbus.timeout_s)  # one owner per TCP gateway or serial bus
            stack.push_async_callback(_quietly, links.close)
            observer = PipelineMetrics(self.metrics, protocol_of=lambda: self.protocol_of, last_seen=self.last_seen,
                                       count=self._count)
            sink = await open_storage(w, pool, self.network, observer)
            async with pool.connection() as conn:  # CalibrationError here: refuse to start
                snapshot = await load_snapshot(conn, now=self.clock(),
                                               maintenance_lookback_s=s.registry.maintenance_lookback_s)
            path = start_pipeline(w, sink, observer)
            intake = Intake((), tz=self.tz)
            submitter = IntakeSubmitter(path.pipeline, intake, clock=self.clock,
                                        durable_timeout_s=s.http.durable_timeout_s,
                                        redelivery_window_s=s.http.redelivery_window_s,
                                        protocol_of=lambda device_id: self.protocol_of.get(device_id, "unknown"),
                                        on_rejected=lambda source, reason:
                                        self.metrics.rejected.labels(source, reason).inc())
            mqtt = start_mqtt_intake(w, intake, submitter, path.pipeline, refuse=self._refuse)
            self.mqtt_status = mqtt.status
            pollers, live = start_pollers(w, links, intake, submitter, path.pipeline, interval_of=self.poll_interval)
            await self._follow_registry(w, pool, snapshot, live)
            scheduler = start_scheduler(w, pool, path.pipeline, tz=self.tz, cadences=live.cadences,
                                        dispatcher=dispatcher, rules=rules)
            monitor, self.health = watch_health(w, pool, mqtt.subscriber, path.pipeline, path.written, pollers)
            listeners = await serve_http(w, pool, submitter, monitor, signing_key=keys.link, status=self.status,
                                         servers=self.http_servers)
            log.info("aqnet daemon running: %d sensors; HTTP %s", len(self.network), ", ".join(
                f"{n} on {'https' if v.tls_cert_file else 'http'}://{v.host}:{v.port}" for n, v in listeners.items()))
            self.metrics.queue_length.set_function(lambda: path.pipeline.queue_length)

            await self._stop.wait()
            await self._drain(w.tasks, scheduler, pollers)
            path.pipeline.close()
            await w.tasks.task("pipeline")  # the last acks go out on the still-open MQTT connection
            await sink.close()  # everything accepted is now in the database or in the spool
        # the exit stack closed the rest in reverse order: clients, links, spool, alert channels, pools
        if self.failure is not None:
            raise TaskFailedError(*self.failure)
        log.info("aqnet daemon stopped")
        if self.refused is not None:
            raise self.refused

    async def _check_alerts(self) -> tuple[AlertKeys, Channels, list[Rule]]:
        """Alert delivery settings are checked before anything starts (ChannelConfigError names channel and file;
        a refused alert topic: StartupRefused): the keys, the channels (not connected) and the rules."""
        s = self.settings
        keys = load_alert_keys(s)  # the link key is never a webhook's (docs/security.md)
        channels = build_channels(s, keys.webhook)
        try:
            await check_alert_channels(channels)
        except StartupRefused:
            await close_channels(channels)
            raise
        return keys, channels, load_rules(s)

    def _start_supervision(self, stack: contextlib.AsyncExitStack) -> TaskSupervisor:
        """The supervisor of the long-running tasks (each start step cancels its own at exit; this is the rest)."""
        sv = self.settings.supervision
        policy = RestartPolicy(min_s=sv.restart_min_s, max_s=sv.restart_max_s, jitter=sv.restart_jitter,
                               max_restarts=sv.max_restarts, window_s=sv.restart_window_s)
        task_metrics = TaskMetrics(self.metrics)
        tasks = TaskSupervisor(policy, on_state=task_metrics.state, on_restart=task_metrics.restarted,
                               on_fatal=self._task_failed)
        stack.callback(tasks.cancel)
        return tasks

    async def _follow_registry(self, w: Wiring, pool: AsyncConnectionPool[Any], snapshot: RegistrySnapshot,
                               live: LiveNetwork) -> None:
        """Apply the registry snapshot read at start, then follow the registry's changes."""
        s = self.settings

        async def apply(snapshot: RegistrySnapshot) -> None:
            # the daemon's own view first, so the metrics of a new device's first readings name its protocol
            self.network = list(snapshot.network)
            self.protocol_of = {d.id: d.protocol for x in self.network for d in x.devices}
            await live.apply(snapshot)

        await apply(snapshot)
        self.follower = follower = RegistryFollower(pool, apply, refresh_s=s.registry.refresh_s,
                                                    maintenance_lookback_s=s.registry.maintenance_lookback_s,
                                                    clock=self.clock, version=snapshot.version)
        w.start("registry", follower.run)

    async def _drain(self, tasks: TaskSupervisor, scheduler: AsyncIOScheduler, pollers: PollerSupervisor) -> None:
        """Clean stop, first part: every task but the pipeline ends (HTTP servers finish their requests)."""
        log.info("aqnet daemon stopping")
        tasks.stopping()
        scheduler.shutdown(wait=False)
        for server in self.http_servers.values():
            server.should_exit = True
        # each HTTP server ends by itself (should_exit), unless it is waiting for a restart
        http_tasks = [f"http-{name}" for name in LISTENERS]
        stopped = tasks.cancel(except_=("pipeline", *(t for t in http_tasks if t not in tasks.down())))
        pollers.cancel()
        await asyncio.gather(*stopped, *pollers.tasks, *(tasks.task(t) for t in http_tasks), return_exceptions=True)


async def _quietly(close: Callable[[], Awaitable[object]]) -> None:
    with contextlib.suppress(Exception):
        await close()


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
