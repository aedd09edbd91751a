"""Live reload: the running daemon follows the sensor registry without a restart. I/O glue (storage).

`RegistryFollower` checks `storage.registry.registry_version` (max audit-log id) every `registry.refresh_s`
wall-clock seconds; when it changed, it loads a `RegistrySnapshot` — the network in the drivers' shape
(`load_network`), the maintenance windows ending after now − `registry.maintenance_lookback_s`, the sensors in
the maintenance state, and the calibrations in force — and hands it to `LiveNetwork.apply`. The version is read
before the snapshot, so a change committed while loading is picked up by the next check, never missed. A failed
check keeps what is running and is retried on the next tick (logged at ERROR once, then DEBUG, recovery INFO).

`LiveNetwork.apply` puts a snapshot into the running stages, the same way at start and on every change:
1. the pipeline's books are swapped whole (plausible ranges of new devices first, then calibrations, maintenance
   and, when sensors were added, moved or retired, the site-conditions book), so a reading is normalised with
   one version or the next, never a mix;
2. the MQTT/HTTP intake's device directory is rebuilt (a new microsensor is decoded from its next message; a
   retired one's messages become dead letters);
3. the station pollers are reconciled (`sensors.modbus.supervisor`) and connections no device uses any more are closed;
4. the averages' expected cadences (a mapping the scheduler's job reads each run) are updated in place (new
   devices added, none removed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ingest.calibration import CalibrationBook, CalibrationError
from ingest.maintenance import MaintenanceBook, MaintenanceWindow
from ingest.pipeline import Pipeline
from sensors.clock import Clock
from sensors.modbus.link import LinkRegistry, link_key
from sensors.modbus.profile import Profile, ProfileError, load_profile
from sensors.modbus.supervisor import PollerPlan, PollerSupervisor, PollTarget, poll_targets
from sensors.mqtt.directory import DeviceDirectory, topic_matches
from sensors.mqtt.subscriber import Intake
from sensors.sensor import MODBUS_PROTOCOLS, Device, Sensor
from sensors.zero_span import CheckSchedule
from storage.registry import list_maintenance, list_sensors, load_network, registry_version
from storage.registry.calibrations import load_calibration_book

__all__ = ["LiveNetwork", "RegistryFollower", "RegistrySnapshot", "load_snapshot", "network_ranges",
           "unsubscribed_devices"]

log = logging.getLogger(__name__)

#: the end of "until further notice" when asking for the windows overlapping [now - lookback, ∞)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------ pure part

def unsubscribed_devices(network: Iterable[Sensor], filters: Sequence[str]) -> list[Device]:
    """MQTT devices whose topic matches none of the subscribed topic filters (their messages never arrive)."""
    return [d for s in network for d in s.devices
            if d.protocol == "mqtt" and d.topic and not any(topic_matches(f, d.topic) for f in filters)]


def network_ranges(network: Iterable[Sensor], profiles: Mapping[str, Profile]
                   ) -> dict[tuple[str, str], tuple[float, float]]:
    """(device id, variable) → plausible range in the reported unit, from the loaded device profiles (QC flags
    OUT_OF_RANGE outside it)."""
    return {(d.id, v): profiles[d.profile].variable(v).range for s in network for d in s.devices
            if d.protocol in MODBUS_PROTOCOLS and d.profile in profiles
            for v in d.variables if v in profiles[d.profile].variable_names}


def _geography(network: Iterable[Sensor]) -> frozenset[tuple[str, str, float, float]]:
    return frozenset((s.id, s.kind, s.lat, s.lon) for s in network)


# ----------------------------------------------------------------------------------------------- snapshot

@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """Everything the running stages take from the registry, as of `version`."""

    version: int
    network: tuple[Sensor, ...]
    maintenance: MaintenanceBook
    calibrations: CalibrationBook


async def load_snapshot(conn: AsyncConnection[Any], *, now: datetime, maintenance_lookback_s: float,
                        checks: Sequence[CheckSchedule] = ()) -> RegistrySnapshot:
    """Read the registry: the network the drivers use, windows ending after `now - maintenance_lookback_s`,
    calibrations; `checks`: the scheduled zero/span checks the maintenance book flags too (settings).

    Raises CalibrationError for calibrations that cannot be used, psycopg errors when the database fails."""
    version = await registry_version(conn)  # first: a change committed meanwhile shows up on the next check
    network = await load_network(conn)
    stored = await list_maintenance(conn, overlapping=(now - timedelta(seconds=maintenance_lookback_s), _FAR_FUTURE))
    windows = [MaintenanceWindow(sensor_id=w.sensor_id, starts_at=w.starts_at, ends_at=w.ends_at,
                                 device_id=w.device_id, variable=w.variable, id=w.id, reason=w.reason)
               for w in stored]
    in_maintenance = [s.id for s in await list_sensors(conn, lifecycle="maintenance")]
    calibrations = await load_calibration_book(conn)
    return RegistrySnapshot(version, tuple(network), MaintenanceBook(windows, sensors_in_maintenance=in_maintenance,
                                                                        checks=checks),
                            calibrations)


# ---------------------------------------------------------------------------------------------- the shells

class LiveNetwork:
    """The running stages' view of the registry; `apply(snapshot)` brings them to it (module docstring).

    Args:
        pipeline, intake, pollers, links: the running stages.
        interval_of: sensor id → its poll interval (s), from the settings.
        microsensor_cadence_s: expected seconds between a microsensor's readings.
        mqtt_topics: the subscribed topic filters (a device outside them is reported: it would never be heard).
        stations: picks the stations this process polls from all of them (a daemon with several processes:
            `sensors.modbus.shares`); all when None.
    """

    def __init__(self, *, pipeline: Pipeline, intake: Intake, pollers: PollerSupervisor, links: LinkRegistry,
                 interval_of: Callable[[str], float], microsensor_cadence_s: float,
                 mqtt_topics: Sequence[str],
                 stations: Callable[[Mapping[str, PollTarget]], Mapping[str, PollTarget]] | None = None) -> None:
        self._stations = stations
        self._pipeline = pipeline
        self._intake = intake
        self._pollers = pollers
        self._links = links
        self._interval_of = interval_of
        self._microsensor_cadence_s = microsensor_cadence_s
        self._topics = tuple(mqtt_topics)
        self._unheard: set[str] = set()
        self.network: tuple[Sensor, ...] = ()  #: the sensors running now
        self.profiles: dict[str, Profile] = {}  #: Modbus device profiles loaded so far, by name
        #: device id → expected seconds between its samples (for completeness); updated in place, never shrunk
        self.cadences: dict[str, float] = {}

    async def apply(self, snapshot: RegistrySnapshot) -> PollerPlan:
        """Bring the pipeline, the intake, the pollers and the cadences to `snapshot`; returns the pollers' plan."""
        moved = _geography(snapshot.network) != _geography(self.network)
        self.network = snapshot.network
        self._load_profiles()
        self._report_unheard()
        pipeline = self._pipeline
        pipeline.ranges = network_ranges(self.network, self.profiles)
        pipeline.calibrations = snapshot.calibrations
        pipeline.maintenance = snapshot.maintenance
        if moved:
            # nearest-station conditions over the new network, keeping the latest T and P observed so far
            pipeline.conditions = pipeline.conditions.with_network(self.network)
        self._intake.directory = DeviceDirectory(self.network)
        cadences = {d.id: (self._interval_of(s.id) if d.protocol in MODBUS_PROTOCOLS else self._microsensor_cadence_s)
                    for s in self.network for d in s.devices}
        # updated, never cleared: the averages job reads it from a worker thread, and the readings of a retired
        # or swapped device still need its cadence when the hours they fall in are averaged
        self.cadences.update(cadences)
        targets = poll_targets(self.network, self._interval_of)
        plan = await self._pollers.apply(dict(self._stations(targets)) if self._stations else targets)
        await self._close_idle_links()
        if plan.stop or plan.start:
            log.info("registry version %d: pollers stopped: %s; started: %s", snapshot.version,
                     ", ".join(plan.stop) or "none", ", ".join(plan.start) or "none")
        return plan

    def _load_profiles(self) -> None:
        for sensor in self.network:
            for d in sensor.devices:
                if d.protocol in MODBUS_PROTOCOLS and d.profile not in self.profiles:
                    try:
                        self.profiles[d.profile] = load_profile(d.profile)
                    except ProfileError as exc:  # the poller then refuses the station, which is logged too
                        log.error("sensor %s device %s: profile %s not loaded: %s", sensor.id, d.id, d.profile, exc)

    def _report_unheard(self) -> None:
        unheard = unsubscribed_devices(self.network, self._topics)
        for device in unheard:
            if device.id not in self._unheard:
                log.error("sensor %s device %s: topic %s matches none of mqtt.topics (%s): its messages will not "
                          "arrive; add a filter to mqtt.topics", device.sensor_id, device.id, device.topic,
                          ", ".join(self._topics))
        self._unheard = {d.id for d in unheard}

    async def _close_idle_links(self) -> None:
        """Close the connections no polled device uses any more (a retired station, a moved gateway); a link
        reopens by itself if a device comes back to it."""
        used = {link_key(d) for s in self.network for d in s.devices if d.protocol in MODBUS_PROTOCOLS}
        for key, link in self._links.links.items():
            if key not in used and link.connected:
                await link.close()


class RegistryFollower:
    """Checks the registry version every `refresh_s` and hands a fresh snapshot to `apply` when it changed.

    Args:
        pool: the daemon's connection pool.
        apply: called with each new snapshot (awaited); when it raises, the same version is tried again on the
            next check.
        refresh_s: seconds between checks (wall clock: registry changes are people's actions).
        maintenance_lookback_s: maintenance windows that ended longer ago than this are not loaded.
        clock: the daemon's clock (the lookback is counted back from its now).
        version: the version already applied at start (the first check then only reloads on a change).
    """

    def __init__(self, pool: AsyncConnectionPool[Any], apply: Callable[[RegistrySnapshot], Awaitable[object]], *,
                 refresh_s: float, maintenance_lookback_s: float, clock: Clock, version: int | None = None,
                 checks: Sequence[CheckSchedule] = ()) -> None:
        self._pool = pool
        self._apply = apply
        self._refresh_s = refresh_s
        self._lookback_s = maintenance_lookback_s
        self._checks = tuple(checks)
        self._clock = clock
        self.version = version  #: the registry version the running stages follow
        #: when that version was applied (daemon clock)
        self.loaded_at: datetime | None = clock() if version is not None else None
        self._failing = False

    async def check(self) -> bool:
        """One check: reload and apply when the version changed; True when a new snapshot was applied."""
        try:
            async with self._pool.connection() as conn:
                version = await registry_version(conn)
                if version == self.version:
                    self._recovered()
                    return False
                snapshot = await load_snapshot(conn, now=self._clock(), maintenance_lookback_s=self._lookback_s,
                                               checks=self._checks)
            await self._apply(snapshot)
        except (psycopg.Error, CalibrationError, ValueError, OSError) as exc:
            level = logging.DEBUG if self._failing else logging.ERROR
            log.log(level, "registry not reloaded (version %s keeps running; retry in %.1f s): %s",
                    self.version, self._refresh_s, exc)
            self._failing = True
            return False
        self._recovered()
        log.info("registry version %s applied (was %s): %d sensors", snapshot.version, self.version,
                 len(snapshot.network))
        self.version = snapshot.version
        self.loaded_at = self._clock()
        return True

    def _recovered(self) -> None:
        if self._failing:
            log.info("registry reachable again (version %s running)", self.version)
            self._failing = False

    async def run(self) -> None:
        """Check every `refresh_s` until cancelled."""
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.check()
            except Exception:  # a bug in applying must not end live reload: logged with its traceback
                log.exception("registry check failed unexpectedly (version %s keeps running)", self.version)
