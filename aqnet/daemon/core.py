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
import os
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
from aqnet.daemon.ipc import Channel
from aqnet.daemon.jobs import start_scheduler
from aqnet.daemon.nodes import NodeAgent
from aqnet.daemon.observer import PipelineMetrics, TaskMetrics
from aqnet.daemon.processes import Role
from aqnet.daemon.serving import IntakeProgress, serve_http, watch_health
from aqnet.daemon.wiring import Wiring
from aqnet.daemon.workers import ConditionsExchange, IntakeProcesses
from aqnet.daemon.writing import open_database, open_storage, start_pipeline
from aqnet.http import LISTENERS
from aqnet.memory import limit_arenas, trim_every
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

__all__ = ["Daemon", "TaskFailedError", "run_daemon", "run_worker"]

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
                 registry: CollectorRegistry | None = None, role: Role | None = None,
                 channel: Channel | None = None) -> None:
        self.settings = settings
        #: this process's part (aqnet.daemon.processes): process 0 of `ingest.processes` unless given
        self.role = role or Role(0, settings.ingest.processes)
        self.channel = channel  #: an intake process's pipe to process 0
        self.workers: IntakeProcesses | None = None  #: process 0 of several: the other processes
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
        if self.workers is not None:  # process 0 of several: the last refresh of the others (aqnet.daemon.workers)
            statuses = self.workers.statuses
            doc["processes"] = {"main": {"pid": os.getpid(), "readings_total": self.readings_total}, **{
                name: st if isinstance(st, str) else {"pid": st.get("pid"), "readings_total": st.get("readings_total"),
                                                     "mqtt": st.get("mqtt")} for name, st in statuses.items()}}
            others = [st for st in statuses.values() if isinstance(st, dict)]
            doc["readings_total"] += sum(int(st.get("readings_total") or 0) for st in others)
            last_seen = doc["last_seen"]
            for st in others:
                for sid, t in (st.get("last_seen") or {}).items():
                    if t is not None and (last_seen.get(sid) is None or t > last_seen[sid]):
                        last_seen[sid] = t
            doc["sensors_reporting"] = sum(1 for t in last_seen.values() if t is not None)
        doc["pid"] = os.getpid()
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
        s, role = self.settings, self.role
        limit_arenas()  # before the threads start (aqnet.memory)
        async with contextlib.AsyncExitStack() as stack:
            # the alert side runs in process 0 only (aqnet.daemon.processes)
            keys, channels, rules = await self._check_alerts() if role.primary else (None, {}, [])
            pool = await open_database(stack, s, apply_migrations=role.primary)
            w = Wiring(s, self.clock, self.metrics, stack, self._start_supervision(stack))
            w.start("heap-trim", trim_every)  # freed native heap back to the system (aqnet.memory)
            links = LinkRegistry(timeout_s=s.modbus.timeout_s)  # one owner per TCP gateway or serial bus
            stack.push_async_callback(_quietly, links.close)
            observer = PipelineMetrics(self.metrics, protocol_of=lambda: self.protocol_of, last_seen=self.last_seen,
                                       count=self._count)
            node: list[NodeAgent] = []  # a node of several (aqnet.daemon.nodes), once built

            async def on_fenced(session: str) -> None:
                if node:
                    await node[0].fenced(session)

            sink = await open_storage(w, pool, self.network if role.primary else None, observer, role,
                                      on_fenced=on_fenced)
            async with pool.connection() as conn:  # CalibrationError here: refuse to start
                snapshot = await load_snapshot(conn, now=self.clock(),
                                               maintenance_lookback_s=s.registry.maintenance_lookback_s,
                                               checks=s.zero_span.schedules(self.tz))
            path = start_pipeline(w, sink, observer)
            exchange = ConditionsExchange(lambda: path.pipeline.conditions)
            if role.count > 1:  # the book is replaced on moves (with_network keeps the hook)
                path.pipeline.conditions.on_observe = exchange.observed
            intake = Intake((), tz=self.tz)
            submitter = IntakeSubmitter(path.pipeline, intake, clock=self.clock,
                                        durable_timeout_s=s.http.durable_timeout_s,
                                        redelivery_window_s=s.http.redelivery_window_s,
                                        protocol_of=lambda device_id: self.protocol_of.get(device_id, "unknown"),
                                        on_rejected=lambda source, reason:
                                        self.metrics.rejected.labels(source, reason).inc())
            if s.nodes.enabled:  # the node's partitions replace the one subscription (aqnet.daemon.nodes)
                pollers, live = start_pollers(w, links, intake, submitter, path.pipeline,
                                              interval_of=self.poll_interval,
                                              stations=lambda t: node[0].station_share(t) if node else {})
                node.append(NodeAgent(w, intake=intake, submitter=submitter, pipeline=path.pipeline,
                                      pollers=pollers, network=lambda: live.network, interval_of=self.poll_interval,
                                      refuse=self._refuse))
                intake_progress: IntakeProgress = node[0]
                self.mqtt_status = node[0].status
            else:
                mqtt = start_mqtt_intake(w, intake, submitter, path.pipeline, refuse=self._refuse, role=role)
                intake_progress = mqtt.subscriber
                self.mqtt_status = mqtt.status
                pollers, live = start_pollers(w, links, intake, submitter, path.pipeline,
                                              interval_of=self.poll_interval, stations=role.stations)
            await self._follow_registry(w, pool, snapshot, live)
            if node:
                stack.push_async_callback(node[0].close)  # after the pipeline's flush: disconnect, then leave
                w.start("node", node[0].run)
            self.metrics.queue_length.set_function(lambda: path.pipeline.queue_length)
            if role.primary:
                assert keys is not None
                # the dispatcher owns the channels from here on (it closes them, after the scheduler stopped);
                # with no channel it still keeps the alert gauges current
                dispatcher = build_dispatcher(pool, s, channels, keys.link, rules=rules, clock=self.clock)
                stack.push_async_callback(dispatcher.close)
                scheduler: AsyncIOScheduler | None = start_scheduler(
                    w, pool, path.pipeline, tz=self.tz, cadences=live.cadences, dispatcher=dispatcher, rules=rules)
                workers = self._start_workers(w, exchange) if role.count > 1 else None
                monitor, self.health = watch_health(w, pool, intake_progress, path.pipeline, path.written, pollers,
                                                    others=workers.down if workers else None)
                listeners = await serve_http(w, pool, submitter, monitor, signing_key=keys.link, status=self.status,
                                             servers=self.http_servers, workers=workers)
                log.info("aqnet daemon running: %d sensors; %d processes; HTTP %s", len(self.network), role.count,
                         ", ".join(f"{n} on {'https' if v.tls_cert_file else 'http'}://{v.host}:{v.port}"
                                   for n, v in listeners.items()))
            else:
                scheduler = None
                assert self.channel is not None
                _, self.health = watch_health(w, pool, intake_progress, path.pipeline, path.written, pollers)
                w.start("process-pipe", lambda: self._serve_pipe(exchange), restart=False)
                log.info("aqnet intake process %d of %d running", role.index, role.count)

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

    def _start_workers(self, w: Wiring, exchange: ConditionsExchange) -> IntakeProcesses:
        """Process 0 of several: start processes 1 … N − 1, supervised, and the conditions exchange with them."""
        workers = IntakeProcesses(self.settings, self.role.count, exchange, log_level=logging.getLogger().level)
        for process in workers.processes:
            w.start(process.role.name, process.run)
        w.start("conditions", lambda: exchange.run(workers.send_own))
        self.workers = workers
        return workers

    async def _serve_pipe(self, exchange: ConditionsExchange) -> None:
        """An intake process: answer process 0's requests and pass site conditions both ways, until the pipe
        closes (process 0 is gone: stop)."""
        channel = self.channel
        assert channel is not None
        flush = asyncio.create_task(exchange.run(lambda obs: channel.send("observe", obs)), name="conditions")
        try:
            while (message := await channel.receive()) is not None:
                if message[0] == "observe":
                    exchange.apply(message[1])
                elif message[0] == "scrape":
                    await channel.send("scraped", message[1], list(self.metrics.registry.collect()), self.status())
        finally:
            flush.cancel()
        if not self._stop.is_set():
            log.warning("intake process %d: process 0 is gone; stopping", self.role.index)
            self.stop()

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
                                                    clock=self.clock, version=snapshot.version,
                                                    checks=s.zero_span.schedules(self.tz))
        w.start("registry", follower.run)

    async def _drain(self, tasks: TaskSupervisor, scheduler: AsyncIOScheduler | None,
                     pollers: PollerSupervisor) -> None:
        """Clean stop, first part: every task but the pipeline ends (HTTP servers finish their requests; intake
        processes flush and exit)."""
        log.info("aqnet daemon stopping")
        tasks.stopping()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        for server in self.http_servers.values():
            server.should_exit = True
        # each HTTP server ends by itself (should_exit), unless it is waiting for a restart
        # an intake process of several serves no HTTP (aqnet.daemon.processes)
        http_tasks = [t for t in (f"http-{name}" for name in LISTENERS) if t in tasks]
        stopped = tasks.cancel(except_=("pipeline", *(t for t in http_tasks if t not in tasks.down())))
        pollers.cancel()
        await asyncio.gather(*stopped, *pollers.tasks, *(tasks.task(t) for t in http_tasks), return_exceptions=True)


async def _quietly(close: Callable[[], Awaitable[object]]) -> None:
    with contextlib.suppress(Exception):
        await close()


def run_daemon(settings: Settings) -> int:
    """Run the daemon (process 0 of `ingest.processes`) until SIGTERM/SIGINT; return the exit code."""
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


async def run_worker(settings: Settings, role: Role, channel: Channel, *,
                     add_signal_handler: Callable[..., object], signals: tuple[int, ...]) -> int:
    """Run intake process `role` (`aqnet.daemon.worker`) until a signal or the end of its pipe; the exit code."""
    daemon = Daemon(settings, role=role, channel=channel)
    for sig in signals:
        add_signal_handler(sig, daemon.stop)
    try:
        await daemon.run()
    except StartupRefused as exc:
        log.error("aqnet intake process %d not started: %s", role.index, exc)
        return EXIT_REFUSED
    except TaskFailedError as exc:
        log.critical("aqnet intake process %d exits with status 1: %s", role.index, exc)
        return 1
    finally:
        channel.close()
    return 0

