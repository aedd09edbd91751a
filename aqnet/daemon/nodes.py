"""One node of several (`nodes.enabled`): its leases, its intake partitions and its stations. Shell (aqnet), I/O.

The node's loop, every `nodes.lease_renew_s` on a connection of its own (keepalives, `lock_timeout`):

1. heartbeat, and renew the leases it holds; a lease the renewal does not return is lost: consumption of it stops
   at once;
2. one rebalancing step per kind (`storage.nodes.plan`): give up the surplus cleanly — stop taking messages, wait
   until the pipeline has acknowledged every message already taken, disconnect the session, then release — and
   take free leases up to the fair share (each take starts the partition's session, `<mqtt.client_id>-p<k>`, which
   receives what the broker kept queued for it);
3. **fence**: when no renewal has succeeded for `nodes.lease_ttl_s − nodes.lease_renew_s` (the database is
   unreachable, or slow), the node stops every partition and station it holds, before any of its leases can
   lapse; the database step is bounded by `lease_renew_s`, so the check always runs. A batch already on its way
   is checked again in its own transaction (`storage.nodes.fence`).

Partition k subscribes to the topics of the MQTT devices of the sensors with `partition_of(sensor id) == k`, from the
live registry; a registry change that alters them restarts that session (the lease is kept). Stations go by link
group (`sensors.modbus.shares.link_groups`): the node polls the stations of the groups it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection

from aqnet.daemon.wiring import Wiring
from aqnet.preflight import StartupRefused, watch_subscriptions
from ingest.intake import IntakeSubmitter
from ingest.pipeline import Pipeline
from sensors.modbus.shares import link_groups
from sensors.modbus.supervisor import PollerSupervisor, PollTarget, poll_targets
from sensors.mqtt.client import Message, MqttSubscriberClient
from sensors.mqtt.subscriber import Intake, MqttSubscriber
from sensors.reading import RawReading
from sensors.sensor import Sensor
from storage.nodes import plan_leases, store
from storage.nodes.plan import as_seen_by, partition_keys, partition_of
from storage.nodes.store import LeaseKind

__all__ = ["NodeAgent"]

log = logging.getLogger(__name__)


@dataclass
class _Partition:
    """A partition this node consumes: its session's subscriber and the acks it still owes."""

    key: str
    topics: tuple[str, ...]
    subscriber: MqttSubscriber | None = None
    task: asyncio.Task[None] | None = None
    watch: asyncio.Task[None] | None = None  #: the first subscription outcome (aqnet.preflight)
    outstanding: int = 0  #: messages taken and not yet acknowledged
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class NodeAgent:
    """This node's leases and what they cover (module docstring). `run()` is the loop; `close()` leaves."""

    def __init__(self, w: Wiring, *, intake: Intake, submitter: IntakeSubmitter, pipeline: Pipeline,
                 pollers: PollerSupervisor, network: Callable[[], tuple[Sensor, ...]],
                 interval_of: Callable[[str], float], refuse: Callable[[StartupRefused], None]) -> None:
        s = w.settings
        self._refuse = refuse  #: a partition's subscription refused by the broker (aqnet.preflight)
        self.w = w
        self.settings = s.nodes
        self.node_id = s.nodes.resolved_node_id()
        self._intake = intake
        self._submitter = submitter
        self._pipeline = pipeline
        self._pollers = pollers
        self._network = network
        self._interval_of = interval_of
        self._keys = partition_keys(s.mqtt.client_id, s.nodes.partitions)
        self.partitions: dict[str, _Partition] = {}
        self.stations: set[str] = set()  #: link groups held
        self._renewed_at: float | None = None  #: monotonic start of the last successful renewal
        self._conn: AsyncConnection[Any] | None = None
        self._handled_before = 0
        m = w.metrics.nodes
        m.leases_held.labels(self.node_id, "partition").set_function(lambda: len(self.partitions))
        m.leases_held.labels(self.node_id, "station").set_function(lambda: len(self.stations))
        m.renewal_age.labels(self.node_id).set_function(
            lambda: time.monotonic() - self._renewed_at if self._renewed_at is not None else float("nan"))
        self._taken = m.leases_taken
        self._fenced = m.fenced.labels(self.node_id)
        # the single subscriber's MQTT gauges, over this node's partition sessions
        self._last_message = time.monotonic()
        w.metrics.mqtt_silence.set_function(lambda: time.monotonic() - self._last_message)
        w.metrics.mqtt_connected.set_function(lambda: float(all(
            p.subscriber.client.status().state == "connected" for p in self.partitions.values()
            if p.subscriber is not None)))

    # -- what the daemon asks ---------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Messages received and not yet handled, over every partition (liveness)."""
        return sum(p.subscriber.pending for p in self.partitions.values() if p.subscriber is not None)

    @property
    def handled(self) -> int:
        """Messages handled since start, over every partition (liveness: progress)."""
        return self._handled_before + sum(p.subscriber.handled for p in self.partitions.values()
                                          if p.subscriber is not None)

    def status(self) -> dict[str, Any]:
        """The `mqtt` part of `/status` on a node: its id and its partitions' sessions."""
        return {"node": self.node_id, "partitions": {
            key: (p.subscriber.client.status().state if p.subscriber is not None else "no sensors")
            for key, p in sorted(self.partitions.items())}, "stations": sorted(self.stations)}

    def station_share(self, targets: Mapping[str, PollTarget]) -> dict[str, PollTarget]:
        """The stations this node polls: those of the link groups it holds (`LiveNetwork`'s filter)."""
        groups = link_groups(targets)
        return {sid: t for sid, t in targets.items() if groups.get(sid) in self.stations}

    async def fenced(self, session: str) -> None:
        """The database refused a late write of `session`: stop consuming it now (`storage.nodes.fence`)."""
        self._fenced.inc()
        part = self.partitions.pop(session, None)
        if part is not None:
            log.warning("node %s: partition %s has passed to another node; its session stops", self.node_id, session)
            await self._stop_partition(part, drain=False)

    # -- the loop ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Renew, rebalance and fence every `lease_renew_s`, until cancelled (then stop taking messages)."""
        n = self.settings
        try:
            while True:
                started = time.monotonic()
                try:  # the renewal never runs past the fence's deadline
                    async with asyncio.timeout(self._until_fence(n.lease_renew_s, started)):
                        conn = await self._renew(started)
                    # a rebalancing step (drains included) ends by the fence's deadline: ttl − renew after `started`
                    async with asyncio.timeout(n.lease_ttl_s - 2 * n.lease_renew_s):
                        await self._rebalance(conn)
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    log.warning("node %s: lease step failed (%s: %s)", self.node_id, type(exc).__name__, exc)
                    await self._disconnect()
                await self._fence_if_late()
                await self._restart_dead()
                now = time.monotonic()  # the next step begins by the fence's deadline, so it is checked in time
                await asyncio.sleep(max(0.0, self._until_fence(n.lease_renew_s - (now - started), now)))
        finally:
            for part in self.partitions.values():  # no new message is taken; the clients stay for the last acks
                if part.task is not None:
                    part.task.cancel()

    def _until_fence(self, wait_s: float, now: float) -> float:
        """`wait_s`, cut short at the fence's deadline while this node holds anything (at least 10 ms)."""
        if self._renewed_at is None or not (self.partitions or self.stations):
            return wait_s
        return max(0.01, min(wait_s, self._renewed_at + self.settings.fence_after_s() - now))

    async def close(self) -> None:
        """A clean stop, after the pipeline flushed: disconnect every session and give every lease up."""
        for part in list(self.partitions.values()):
            await self._stop_partition(part, drain=False)
        self.partitions.clear()
        self.stations.clear()
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            async with asyncio.timeout(self.settings.lease_renew_s):
                conn = await self._connection()
                await store.leave(conn, self.node_id)
        await self._disconnect()

    async def _connection(self) -> AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            keepalive = max(1, round(self.settings.lease_renew_s))
            self._conn = await AsyncConnection.connect(
                self.w.settings.database.url, autocommit=True, application_name=f"aqnet-node {self.node_id}",
                connect_timeout=max(1, round(self.settings.lease_renew_s)),
                keepalives=1, keepalives_idle=keepalive, keepalives_interval=1, keepalives_count=2,
                # a take waits at most this long for a stale holder's batch in flight (storage.nodes.fence)
                options=f"-c lock_timeout={max(1, round(self.settings.lease_renew_s * 500))}")
        return self._conn

    async def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def _renew(self, started: float) -> AsyncConnection[Any]:
        """Heartbeat and renew; stop what was lost. The connection, for the rebalancing step."""
        n = self.settings
        conn = await self._connection()
        await store.heartbeat(conn, self.node_id, host=socket.gethostname(), pid=os.getpid(), ttl_s=n.lease_ttl_s)
        kept = await store.renew(conn, self.node_id, "partition", list(self.partitions), ttl_s=n.lease_ttl_s)
        kept_stations = await store.renew(conn, self.node_id, "station", sorted(self.stations), ttl_s=n.lease_ttl_s)
        self._renewed_at = started
        for key in [k for k in self.partitions if k not in kept]:
            log.warning("node %s: lease of partition %s lost; its session stops", self.node_id, key)
            await self._stop_partition(self.partitions.pop(key), drain=False)
        if self.stations - set(kept_stations):
            log.warning("node %s: leases of stations %s lost", self.node_id, sorted(self.stations - set(kept_stations)))
            self.stations &= set(kept_stations)
            await self._apply_stations()
        return conn

    async def _rebalance(self, conn: AsyncConnection[Any]) -> None:
        nodes = await store.live_nodes(conn)
        await self._rebalance_partitions(conn, nodes)
        await self._rebalance_stations(conn, nodes)

    async def _rebalance_partitions(self, conn: AsyncConnection[Any], nodes: set[str]) -> None:
        n = self.settings
        topics = self._partition_topics()
        seen = as_seen_by(self.node_id, await store.holders(conn, "partition"), self.partitions.keys())
        plan = plan_leases(self.node_id, self._keys, seen, nodes)
        for key in plan.release:
            part = self.partitions.pop(key, None)
            if part is not None:
                await self._stop_partition(part, drain=True)
        await store.release(conn, self.node_id, "partition", list(plan.release))
        for key in plan.take:
            epoch = await store.take(conn, self.node_id, "partition", key, ttl_s=n.lease_ttl_s)
            if epoch is not None:
                self._taken.labels(node=self.node_id, kind="partition").inc()
                log.info("node %s: took partition %s (epoch %d)", self.node_id, key, epoch)
                self.partitions[key] = self._start_partition(key, topics.get(key, ()))
        for key, part in list(self.partitions.items()):  # the registry changed this partition's sensors
            if part.topics != topics.get(key, ()):
                await self._stop_partition(part, drain=True)
                self.partitions[key] = self._start_partition(key, topics.get(key, ()))

    async def _rebalance_stations(self, conn: AsyncConnection[Any], nodes: set[str]) -> None:
        kind: LeaseKind = "station"
        groups = sorted(set(link_groups(self._targets()).values()))
        seen = as_seen_by(self.node_id, await store.holders(conn, kind), self.stations)
        plan = plan_leases(self.node_id, groups, seen, nodes)
        if plan.release:
            self.stations -= set(plan.release)
            await self._apply_stations()  # the pollers stop first, then the leases go
            await store.release(conn, self.node_id, kind, list(plan.release))
        taken = False
        for key in plan.take:
            if await store.take(conn, self.node_id, kind, key, ttl_s=self.settings.lease_ttl_s) is not None:
                self._taken.labels(node=self.node_id, kind=kind).inc()
                self.stations.add(key)
                taken = True
        if taken:
            log.info("node %s: polls link groups %s", self.node_id, ", ".join(sorted(self.stations)))
            await self._apply_stations()

    async def _fence_if_late(self) -> None:
        if not (self.partitions or self.stations):
            return
        late = self._renewed_at is None or time.monotonic() - self._renewed_at >= self.settings.fence_after_s()
        if late:
            self._fenced.inc()
            log.error("node %s: no lease renewal for %.1f s; stops consuming %d partitions and %d link groups before "
                      "their leases lapse", self.node_id, self.settings.fence_after_s(), len(self.partitions),
                      len(self.stations))
            for part in list(self.partitions.values()):
                await self._stop_partition(part, drain=False)
            self.partitions.clear()
            self.stations.clear()
            await self._apply_stations()

    async def _restart_dead(self) -> None:
        """Start again the intake of a held partition that ended: it raised (the message in hand stays
        unacknowledged), or an earlier run of this loop was cancelled by a crash and restarted by the daemon's
        supervisor (only this loop calls it: a stopping daemon never restarts one)."""
        for part in self.partitions.values():
            if part.task is not None and part.task.done():
                why = "cancelled" if part.task.cancelled() else repr(part.task.exception())
                log.error("node %s: partition %s intake ended (%s); restarting it", self.node_id, part.key, why)
                part.task = asyncio.create_task(self._run_subscriber(part), name=f"mqtt-{part.key}")

    # -- partitions -------------------------------------------------------------------------------------------
    def _partition_topics(self) -> dict[str, tuple[str, ...]]:
        """Partition key → the topics of its sensors' MQTT devices."""
        out: dict[str, set[str]] = {}
        for sensor in self._network():
            key = self._keys[partition_of(sensor.id, len(self._keys))]
            for d in sensor.devices:
                if d.protocol == "mqtt" and d.topic:
                    out.setdefault(key, set()).add(d.topic)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def _start_partition(self, key: str, topics: tuple[str, ...]) -> _Partition:
        part = _Partition(key, topics)
        part.drained.set()
        if not topics:
            return part
        s, m = self.w.settings, self.w.metrics
        loop = asyncio.get_running_loop()

        def client_factory(on_message: Callable[[Message], None]) -> MqttSubscriberClient:
            return MqttSubscriberClient(
                s.mqtt.url, client_id=key, topics=list(topics), loop=loop, on_message=on_message,
                receive_maximum=s.mqtt.receive_maximum, session_expiry_s=s.mqtt.session_expiry_s, clock=self.w.clock,
                protocol=s.mqtt.protocol, ca_file=s.mqtt.ca_file, cert_file=s.mqtt.cert_file, key_file=s.mqtt.key_file,
                reconnect_min_s=s.mqtt.reconnect_min_s, reconnect_max_s=s.mqtt.reconnect_max_s,
                max_pending=s.mqtt.receive_maximum, verify_read_s=s.mqtt.verify_read_s)

        def counted(ack: Callable[[], None] | None) -> Callable[[], None]:
            part.outstanding += 1
            part.drained.clear()

            def done() -> None:
                part.outstanding -= 1
                if part.outstanding == 0:
                    part.drained.set()
                if ack is not None:
                    ack()
            return done

        async def submit(readings: list[RawReading], ack: Callable[[], None] | None = None) -> None:
            await self._pipeline.submit(readings, counted(ack))

        async def reject(rejection: Any, ack: Callable[[], None]) -> None:
            await self._submitter.reject(rejection, counted(ack))

        def seen(message: Message) -> None:
            self._last_message = time.monotonic()
            if getattr(message, "dup", False):
                m.mqtt_redelivered.inc()

        part.subscriber = MqttSubscriber(client_factory, self._intake, submit=submit, reject=reject,
                                         max_pending=s.mqtt.receive_maximum, on_message_seen=seen,
                                         on_unmapped=lambda sid, k: m.unmapped_channels.labels(sid).inc(k))
        part.task = asyncio.create_task(self._run_subscriber(part), name=f"mqtt-{key}")
        # its first subscription outcome: a refusal (the login may not read these topics) stops the daemon
        part.watch = asyncio.create_task(watch_subscriptions(part.subscriber.client, self._refuse),
                                         name=f"mqtt-{key}-subscribed")
        return part

    async def _run_subscriber(self, part: _Partition) -> None:
        assert part.subscriber is not None
        await part.subscriber.run()

    async def _stop_partition(self, part: _Partition, *, drain: bool) -> None:
        """Stop taking messages; with `drain`, wait (at most until the fence) until every message taken is
        acknowledged; then disconnect (what is unacknowledged stays with the broker for the next holder)."""
        if part.watch is not None:
            part.watch.cancel()
        if part.task is not None:
            part.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await part.task
        if drain:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(part.drained.wait(), timeout=self.settings.lease_renew_s)
        if part.subscriber is not None:
            self._handled_before += part.subscriber.handled
            await asyncio.to_thread(part.subscriber.client.stop)
            part.subscriber = None

    # -- stations ---------------------------------------------------------------------------------------------
    def _targets(self) -> dict[str, PollTarget]:
        return poll_targets(self._network(), self._interval_of)

    async def _apply_stations(self) -> None:
        await self._pollers.apply(self.station_share(self._targets()))

