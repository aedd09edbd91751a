"""Test harness of the alert-delivery acceptance tests (tests/e2e/test_alert_delivery.py): a simulated PM2.5
episode written through the real write path, the real stage jobs on a stepped clock, and the real dispatcher.

What it drives, all real:
- data: `simulators.signals.CitySignals` with scripted `Episode`s, sampled every `CADENCE_S` for three bundled
  stations (PM2.5 and PM10 of their `<code>-pm` analyser), submitted as `RawReading`s to `ingest.pipeline.Pipeline`
  (normalise to reference conditions, QC) whose sink is `storage.writer.TimescaleWriter`; the sensors are
  registered with `storage.registry.upsert_registry` (as the daemon seeds them);
- evaluation: `alerts.jobs.run_stage_jobs(conn, now, rules, ...)` once per simulated hour (averages with their
  completeness, then the rules), a little after the hour like the daemon's scheduler;
- delivery: the channels and the `Dispatcher` the daemon builds (`aqnet.alert_channels`) from an
  `AlertsSettings` whose channels point at the receivers the tests start.

Two clocks. The stored times are near the wall clock (the scenario starts at local midnight `DAYS_BACK` days ago)
because delivery meets wall-clock business: Alertmanager's startsAt / endsAt (a resolved alert's endsAt must be
in the past), the 7-day window of events still to deliver, the lifetime of signed acknowledgement links. The
dispatcher runs on the stepped clock (`AlertHarness.now`), like the stage jobs, since it plans the events whose
period ended after the channel was first seen. The signal,
however, is always read on one fixed reference timeline starting `REFERENCE_START` (a Monday), shifted by a
whole number of days, so the values, hence the averages and the delivery counts, are the same whatever day the
test runs (the signals' noise and weekday cycle depend on the absolute time).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg_pool import AsyncConnectionPool

from alerts.jobs import run_stage_jobs
from alerts.rules.model import Rule
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import Reading
from sensors.network import bundled_network
from sensors.reading import RawReading
from sensors.sensor import Sensor
from simulators.signals import REPORTED_UNITS, CitySignals, Episode
from storage.registry import upsert_registry
from storage.writer import TimescaleWriter

BOGOTA = ZoneInfo("America/Bogota")
H = timedelta(hours=1)
CADENCE_S = 600  #: one reading every 10 min: 6 per hour (5 of 6 make a valid hour: 75 %, alerts.averaging.averages)
VARIABLES = ("pm25", "pm10")
#: KEN and CSE (both in the locality Kennedy) live through the PM2.5 episode; USQ (Usaquén) flaps
STATIONS = ("KEN", "CSE", "USQ")
EPISODE_STATIONS = ("KEN", "CSE")
FLAPPING_STATION = "USQ"
REFERENCE_START = datetime(2026, 3, 2, tzinfo=BOGOTA)  #: a Monday, 00:00 local: hour 0 of the signal timeline
DAYS_BACK = 3  #: the scenario (64 h) starts at local midnight this many days ago: it ends 10–34 h before now
SEED = 7  #: CitySignals seed; the expected counts below hold for this seed (the tests check the averages too)

# ----------------------------------------------------------------------------------------------- the script

#: the Kennedy episode (hours of the timeline): PM2.5 × 5 from hour 24 to 38, ramping in and out over 3 h. The
#: 24-h means ending at the current hour rise from ~21 (KEN) / ~27 (CSE) µg/m³ through 38 (prevention) and 56
#: (alert) to ~64 / ~81 and fall back below 30 about 24 h after the episode ends.
EPISODE_START_H, EPISODE_END_H, EPISODE_FACTOR = 24, 38, 5.0
#: Usaquén flaps: PM2.5 × 2.6 for 5 h, then 5 h without, from hour 4 on. Its 24-h mean oscillates (period 10 h,
#: 24 h is not a multiple of it) between ~35 and ~46 µg/m³: across 38 many times, never below 30, never up to 56.
FLAP_FIRST_H, FLAP_ON_H, FLAP_PERIOD_H, FLAP_BLOCKS, FLAP_FACTOR = 4, 5, 10, 14, 2.6


def scripted_episodes() -> tuple[Episode, ...]:
    """The episode at Kennedy and the on/off blocks at Usaquén, on the reference timeline."""
    at = REFERENCE_START
    kennedy = Episode(variable="pm25", start=at + EPISODE_START_H * H, end=at + EPISODE_END_H * H,
                      factor=EPISODE_FACTOR, localities=frozenset({"Kennedy"}), ramp_s=3 * 3600)
    flaps = tuple(Episode(variable="pm25", start=at + (FLAP_FIRST_H + k * FLAP_PERIOD_H) * H,
                          end=at + (FLAP_FIRST_H + k * FLAP_PERIOD_H + FLAP_ON_H) * H, factor=FLAP_FACTOR,
                          localities=frozenset({"Usaquén"}), ramp_s=0)
                  for k in range(FLAP_BLOCKS))
    return (kennedy, *flaps)


#: the rules of these tests: the shipped PM2.5 24-h prevention / alert / emergency levels (Res. 2254/2017, the
#: numbers of alerts/rules/default_rules.yaml) with an explicit clear level of 30 µg/m³, so the hysteresis band is wide
#: and the counts do not hang on a decimal. {escalate} is the rule's unacknowledged-escalation delay (0: never).
RULES_YAML = """
rules:
  - id: pm25-24h-levels
    description: PM2.5 24-hour mean ending at the current hour against Res. 2254/2017 levels (test copy)
    variable: pm25
    period: 24h
    scope: sensor
    min_duration: 1
    escalate_unacknowledged_after_min: {escalate}
    clear_below:
      threshold: 30
      unit: µg/m³
      source: "aqnet acceptance test: hysteresis (not a norm value)"
    levels:
      - name: prevention
        threshold: 38          # Res. 2254/2017 prevention band 38–55 (norms.json prevention_alert_emergency)
        unit: µg/m³
        severity: warning
        source: "Res. 2254/2017 prevención/alerta/emergencia: PM2.5 24 h prevention 38–55"
        status: verified_secondary
      - name: alert
        threshold: 56          # Res. 2254/2017 alert band 56–150 (same table)
        unit: µg/m³
        severity: critical
        source: "Res. 2254/2017 prevención/alerta/emergencia: PM2.5 24 h alert 56–150"
        status: verified_secondary
      - name: emergency
        threshold: 151         # Res. 2254/2017 emergency >= 151 (same table)
        unit: µg/m³
        severity: critical
        source: "Res. 2254/2017 prevención/alerta/emergencia: PM2.5 24 h emergency >= 151"
        status: verified_secondary
"""


#: a technicians' rule (the shipped station-no-data): a station silent for 30 min or more, clear below 15 min
NO_DATA_YAML = """
  - id: station-no-data
    description: A reference station sent no reading for too long
    kind: no_data
    sensors: reference
    clear_fraction: 0.5
    escalate_unacknowledged_after_min: 0
    levels:
      - name: no_data
        threshold: 30
        unit: min
        source: "aqnet operational default, not a norm: no reading for 30 min"
        severity: warning
"""


def test_rules(*, escalate_after_min: float = 0, no_data: bool = False) -> tuple[Rule, ...]:  # noqa: PT028 - a builder, not a test
    """The rules above (with the technicians' no-data rule if `no_data`), parsed by `alerts.rules.parse_rules`."""
    from alerts.rules.model import parse_rules

    return parse_rules(RULES_YAML.format(escalate=escalate_after_min) + (NO_DATA_YAML if no_data else ""),
                       source="tests/e2e/alert_harness.py")


test_rules.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


def scenario_start(today: datetime | None = None) -> datetime:
    """Local midnight `DAYS_BACK` days before `today` (default: now): hour 0 of the stored timeline."""
    local = (today or datetime.now(UTC)).astimezone(BOGOTA)
    return datetime(local.year, local.month, local.day, tzinfo=BOGOTA) - timedelta(days=DAYS_BACK)


def harness_sensors(stations: Sequence[str] = STATIONS) -> list[Sensor]:
    """The bundled stations `stations` (with their devices, as the daemon configures them)."""
    by_id = {s.id: s for s in bundled_network()}
    return [by_id[s] for s in stations]


# ------------------------------------------------------------------------------------------- the write path

class _Observer:
    """The pipeline's observer: a rejected reading or a failed write fails the harness (nothing is dropped)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.readings = 0  #: readings committed

    def written(self, batch: Sequence[Reading], result: object, seconds: float) -> None:
        self.readings += len(batch)

    def write_failed(self, error: Exception, attempt: int) -> None:
        self.problems.append(f"write failed (attempt {attempt}): {error}")

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None:
        self.problems.append(f"{raw.sensor_id} {raw.variable} rejected: {reason}: {detail}")


@dataclass
class AlertHarness:
    """The city, its write path and the stage jobs on a stepped clock. Use `async with`.

    `hour` is the number of the last simulated hour whose readings are written and evaluated (hour h ends at
    `start + h` local); `now` is when the stage jobs ran for it (30 s after the hour, like a scheduler).
    """

    database_url: str
    rules: Sequence[Rule]
    escalate_after_min: float = 0.0  #: run_stage_jobs' default for rules that do not set their own
    stations: Sequence[str] = STATIONS
    seed: int = SEED
    start: datetime = field(default_factory=scenario_start)
    hour: int = 0
    runs: list[Any] = field(default_factory=list)  #: the StageRun of every hour evaluated
    silent: set[str] = field(default_factory=set)  #: stations that send nothing (a link down) while listed here
    _pool: AsyncConnectionPool[Any] | None = None
    _pipeline: Pipeline | None = None
    _pipeline_task: asyncio.Task[None] | None = None
    _jobs_conn: psycopg.Connection[Any] | None = None
    _clock: tuple[datetime, float] = field(default_factory=lambda: (datetime.now(UTC), time.monotonic()))
    _observer: _Observer = field(default_factory=_Observer)

    def __post_init__(self) -> None:
        self.signals = CitySignals(self.seed, episodes=scripted_episodes())
        self.sensors = harness_sensors(self.stations)
        self.device_of = {s.id: next(d.id for d in s.devices if "pm25" in d.variables) for s in self.sensors}

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect (pool for the writer, one sync connection for the stage jobs), register the sensors."""
        self._pool = AsyncConnectionPool(self.database_url, min_size=1, max_size=2, open=False)
        await self._pool.open(wait=True, timeout=30)
        await upsert_registry(self._pool, self.sensors)
        self._pipeline = Pipeline(TimescaleWriter(self._pool), conditions=ConditionsBook(self.sensors),
                                  observer=self._observer, clock=self._pipeline_clock, batch_max=1000,
                                  batch_max_age_s=0.05)
        self._pipeline_task = asyncio.create_task(self._pipeline.run(), name="harness-pipeline")
        self._jobs_conn = psycopg.connect(self.database_url, autocommit=True)

    async def close(self) -> None:
        """Flush the pipeline and close every connection (a 'restart' of the evaluating process)."""
        if self._pipeline is not None and self._pipeline_task is not None:
            self._pipeline.close()
            await asyncio.wait_for(self._pipeline_task, 30)
            self._pipeline = self._pipeline_task = None
        if self._jobs_conn is not None:
            self._jobs_conn.close()
            self._jobs_conn = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def restart(self) -> None:
        """Close and reopen everything: the next hours run on new connections and a new pipeline."""
        await self.close()
        await self.open()

    # -- time --------------------------------------------------------------------------------------------
    def _pipeline_clock(self) -> datetime:
        """The pipeline's clock: the simulated instant last set, ticking on in real time from there (so the
        batcher's max_age elapses while the simulated time stands still between steps)."""
        at, since = self._clock
        return at + timedelta(seconds=time.monotonic() - since)

    def end_of(self, hour: int) -> datetime:
        """When simulated hour `hour` ends (local-aware)."""
        return self.start + hour * H

    @property
    def now(self) -> datetime:
        """The stepped clock: 30 s after the end of the last hour evaluated."""
        return self.end_of(self.hour) + timedelta(seconds=30)

    def signal_time(self, t: datetime) -> datetime:
        """The reference-timeline instant whose signal is stored at `t` (module docstring: two clocks)."""
        return REFERENCE_START + (t - self.start)

    # -- data --------------------------------------------------------------------------------------------
    def raw_readings(self, t: datetime) -> list[RawReading]:
        """Every station's PM2.5 and PM10 at `t`, as their PM monitor reports them (per actual m³, local)."""
        at = self.signal_time(t)
        received = t + timedelta(seconds=2)
        return [RawReading(sensor_id=s, device_id=self.device_of[s], variable=v,
                           value=round(self.signals.value(s, v, at), 2), unit=REPORTED_UNITS[v], time=t,
                           received_at=received, conditions="local")
                for s in self.stations if s not in self.silent for v in VARIABLES]

    async def write_hours(self, first: int, last: int) -> int:
        """Submit the readings of hours `first`..`last` (the hour ending at h holds [h-1 h, h)) through the
        pipeline, one submission per sampling instant, and wait until all are durable; returns readings."""
        assert self._pipeline is not None, "harness not open"
        done: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        count = 0
        t = self.end_of(first - 1)
        end = self.end_of(last)
        while t < end:
            raws = self.raw_readings(t)
            if not raws:
                t += timedelta(seconds=CADENCE_S)
                continue
            self._clock = (t + timedelta(seconds=2), time.monotonic())  # received now: no STALE, no CLOCK_SKEW
            fut: asyncio.Future[None] = loop.create_future()
            await self._pipeline.submit(raws, ack=lambda f=fut: f.done() or f.set_result(None))
            done.append(fut)
            count += len(raws)
            t += timedelta(seconds=CADENCE_S)
        await asyncio.wait_for(asyncio.gather(*done), 60)
        assert not self._observer.problems, self._observer.problems
        return count

    # -- the stage jobs ----------------------------------------------------------------------------------
    async def stage(self) -> Any:
        """run_stage_jobs at `now` (in a thread: it is sync psycopg); returns its StageRun."""
        assert self._jobs_conn is not None, "harness not open"
        conn, now = self._jobs_conn, self.now
        run = await asyncio.to_thread(run_stage_jobs, conn, now, self.rules, cadence_s=float(CADENCE_S),
                                      tz=BOGOTA, escalate_after_min=self.escalate_after_min)
        self.runs.append((self.hour, run))
        return run

    async def warm_up(self, hours: int) -> Any:
        """Write hours 1..`hours` at once and run the stage jobs once at the end (a catch-up, like a daemon
        started with history): rolling means have their 24 h of history from the first evaluated hour."""
        assert self.hour == 0, "warm_up only at the start"
        await self.write_hours(1, hours)
        self.hour = hours
        return await self.stage()

    async def advance(self, hours: int = 1, *, after_each: Callable[[int], Any] | None = None) -> None:
        """Step the clock `hours` hours: per hour write its readings, run the stage jobs, then `after_each`
        (an async or sync callable of the hour number, e.g. the dispatcher)."""
        for _ in range(hours):
            await self.write_hours(self.hour + 1, self.hour + 1)
            self.hour += 1
            await self.stage()
            if after_each is not None:
                result = after_each(self.hour)
                if asyncio.iscoroutine(result):
                    await result

    # -- what the database holds ------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def means_24h(self, sensor: str) -> list[tuple[int, float | None, bool]]:
        """(hour number, value, valid) of the stored 24-h PM2.5 means of `sensor`, in order."""
        rows = self.query("SELECT period_end, value, valid FROM averages WHERE sensor_id = %s AND variable = 'pm25' "
                          "AND period = '24h' ORDER BY period_end", (sensor,))
        return [(round((end - self.start) / H), value, valid) for end, value, valid in rows]

    def events(self) -> list[tuple[int, str, str, str, str | None, int]]:
        """(alert id, sensor, event kind, level, from_level, hour) of every alert event, in order."""
        rows = self.query("SELECT a.id, a.scope_key, e.kind, e.level, e.from_level, e.time FROM alert_events e "
                          "JOIN alerts a ON a.id = e.alert_id ORDER BY e.id")
        return [(i, key, kind, level, from_level, round((t - self.start) / H) if t else -1)
                for i, key, kind, level, from_level, t in rows]

    def outbox(self) -> list[tuple[str, str, int]]:
        """(channel, state, attempts) of every outbox row."""
        return [tuple(r) for r in self.query("SELECT channel, state, attempts FROM alert_outbox ORDER BY id")]


def crossings(means: Iterable[tuple[int, float | None, bool]], level: float) -> int:
    """How many times a series of valid means crosses `level` downwards (value >= level, then < level)."""
    count, above = 0, None
    for _, value, valid in means:
        if not valid or value is None:
            continue
        now_above = value >= level
        if above and not now_above:
            count += 1
        above = now_above
    return count


# ------------------------------------------------------------------------------------------------ receivers

class MqttTally:
    """Subscribes to `<prefix>/#` on a broker and records every message (topic, retained flag, JSON payload).

    The alert channel publishes each transition retained on the alert's state topic; a subscriber connected
    before the first publish receives each publish once, live (retain flag 0)."""

    def __init__(self, port: int, prefix: str, *, client_id: str = "alert-tally") -> None:
        self.messages: list[tuple[str, bool, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise TimeoutError(f"MQTT tally: no SUBACK from 127.0.0.1:{port} within 10 s")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"unparsable": msg.payload.decode("utf-8", "replace")}
        with self._lock:
            self.messages.append((msg.topic, bool(msg.retain), payload))

    def snapshot(self) -> list[tuple[str, bool, dict[str, Any]]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, bool, dict[str, Any]]]:
        """The messages once at least `n` arrived (or what arrived by the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.snapshot()) < n:
            time.sleep(0.02)
        return self.snapshot()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1) -> None:
    """Poll `predicate` until true; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


# ------------------------------------------------------------------------------------------------- delivery

def alert_settings(database_url: str, mqtt_port: int, channels: Sequence[Mapping[str, Any]], *,
                   tmp_dir: str, **alerts: Any) -> Any:
    """The daemon's `Settings` with an `alerts` section holding `channels` (dicts as in the YAML file)."""
    from aqnet.config import settings_from_dict

    return settings_from_dict({
        "database": {"url": database_url}, "mqtt": {"url": f"mqtt://127.0.0.1:{mqtt_port}"},
        "alerts": {"language": "es", "dashboard_url": "http://grafana.example:3000",
                   "public_url": "http://aqnet.example:8080", "signing_key_file": f"{tmp_dir}/alert-signing.key",
                   "link_key_file": f"{tmp_dir}/alert-link.key", "channels": list(channels), **alerts}},
        source="alert_harness")


class Delivery:
    """The daemon's delivery side, built as `aqnet.daemon` builds it (`aqnet.alert_channels`): channels and a
    Dispatcher on the harness's stepped clock. `restart()` closes it and builds a new one (new clients, new
    connections), as a restarted daemon would."""

    def __init__(self, settings: Any, clock: Callable[[], datetime]) -> None:

        from aqnet.alert_channels import load_alert_keys

        self.settings = settings
        self.clock = clock
        self.keys = load_alert_keys(settings)
        self.key = self.keys.link  #: what the API verifies links with
        self.dispatcher: Any = None
        self.runs: list[Any] = []
        self._build()

    def _build(self) -> None:
        from aqnet.alert_channels import build_channels, build_dispatcher

        channels = build_channels(self.settings, self.keys.webhook)
        self.dispatcher = build_dispatcher(self.settings.database.url, self.settings, channels, self.key,
                                           clock=self.clock)

    async def run_once(self, now: datetime | None = None) -> Any:
        run = await self.dispatcher.run_once(now)
        self.runs.append(run)
        return run

    async def restart(self) -> None:
        await self.dispatcher.close()
        self._build()

    async def close(self) -> None:
        await self.dispatcher.close()


def api_client(database_url: str, signing_key: bytes) -> Any:
    """An async context giving an httpx client on the daemon's real HTTP app (`aqnet.http.create_api_app` with
    `aqnet.api.api_router` on its own pool), in process through httpx.ASGITransport."""
    from contextlib import asynccontextmanager

    import httpx

    from aqnet.api import api_router
    from aqnet.http import create_api_app

    @asynccontextmanager
    async def client() -> Any:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
        await pool.open(wait=True, timeout=30)
        try:
            app = create_api_app(api_router(pool, signing_key=signing_key))
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aqnet.test") as c:
                yield c
        finally:
            await pool.close()

    return client()
