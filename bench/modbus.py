"""`python -m bench modbus`: aqnet's Modbus polling against the raw pymodbus request rate, measured in one run.

Both halves run in this one process against the same simulated stations (`simulators.station.StationServer`,
one per bundled station, on free ports), so the servers' work is in both figures and they compare across
machines:

- baseline: bare `AsyncModbusTcpClient`s, one per station server (or `clients` of them), each reading 40
  holding registers of its station's history ring (PDU address 5000, which every sim profile serves) back to
  back for `baseline_s` (after a warm-up, in 5 rounds: the median round is kept): reads/s and process CPU
  per read.
- aqnet: `stations` stations (the 19 bundled ones, plus copies of them under new ids that point at the same
  servers, so copies share their original's link) polled by `sensors.modbus.poller.StationPoller` every
  `interval_s` through one `sensors.modbus.link.LinkRegistry`, started all at once as the daemon starts them,
  with an `on_readings` that only records when each device's poll completed. The first tick (connects) is a
  warm-up; the next `duration_s / interval_s` ticks are measured: polls done against expected (a tick with no
  completed read before the next one is a missed poll), the interval between successive polls of a device
  (mean and p95), how long after its tick a poll completed (p95), process CPU per poll and requests per poll.

A poll is one read of one device (one `read_device`: every request its read plan needs). The sustainable rates
are 1 / CPU per poll and 1 / CPU per read, i.e. what one fully busy core would do; their ratio is printed.
No figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pymodbus.client import AsyncModbusTcpClient

from sensors.modbus.link import LinkRegistry
from sensors.modbus.poller import StationPoller
from sensors.modbus.profile import Profile, load_profile
from sensors.network import bundled_network
from sensors.reading import Gap, RawReading
from sensors.sensor import Sensor
from simulators.signals import CitySignals
from simulators.station import StationServer

__all__ = ["BaselineResult", "ModbusBench", "PollingResult", "main", "measure_baseline", "measure_polling",
           "replicate", "report", "run"]

#: the baseline's request: 40 holding registers of the history ring every sim profile serves from PDU 5000
BASELINE_ADDRESS = 5000
BASELINE_COUNT = 40


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """Raw pymodbus reads of `count` registers, back to back from `clients` concurrent clients (one round)."""

    clients: int
    count: int  #: registers per read
    reads: int
    wall_s: float
    cpu_s: float  #: process CPU (client and servers) over the same span
    rounds: int = 1  #: the round reported is the median of this many

    @property
    def reads_per_s(self) -> float:
        """Reads completed per wall-clock second."""
        return self.reads / self.wall_s

    @property
    def cpu_per_read_s(self) -> float:
        """Process CPU per read, in s."""
        return self.cpu_s / self.reads


@dataclass(frozen=True, slots=True)
class PollingResult:
    """aqnet's pollers over the measured ticks."""

    stations: int
    devices: int
    links: int
    interval_s: float
    ticks: int  #: ticks measured (after the warm-up tick)
    expected: int  #: device polls due in the measured ticks (devices × ticks)
    done: int  #: due polls that completed (readings or a gap) before the device's next tick
    gaps: int  #: completed polls that were gaps (failed reads)
    polls: int  #: every poll completed in the CPU window (the measured ticks' and any late warm-up ones)
    requests: int  #: requests the servers received in the CPU window
    cpu_s: float  #: process CPU over the CPU window (pollers, links and servers)
    intervals_s: tuple[float, ...]  #: time between successive polls of a device, per device and tick
    delays_s: tuple[float, ...]  #: time from each measured tick to its poll's completion

    @property
    def missed(self) -> int:
        """Due polls that did not complete before the device's next tick."""
        return self.expected - self.done

    @property
    def mean_interval_s(self) -> float:
        """Mean time between successive polls of a device, in s (NaN with no interval)."""
        return sum(self.intervals_s) / len(self.intervals_s) if self.intervals_s else math.nan

    @property
    def p95_interval_s(self) -> float:
        """95th percentile of the time between successive polls of a device, in s."""
        return _percentile(self.intervals_s, 0.95)

    @property
    def p95_delay_s(self) -> float:
        """95th percentile of the time from a tick to its poll's completion, in s."""
        return _percentile(self.delays_s, 0.95)

    @property
    def cpu_per_poll_s(self) -> float:
        """Process CPU per device poll, in s."""
        return self.cpu_s / self.polls if self.polls else math.nan

    @property
    def requests_per_poll(self) -> float:
        """Modbus requests per device poll."""
        return self.requests / self.polls if self.polls else math.nan


@dataclass(frozen=True, slots=True)
class ModbusBench:
    """Both halves of one run."""

    baseline: BaselineResult
    polling: PollingResult

    @property
    def sustainable_polls_per_s(self) -> float:
        """Device polls per s one fully busy core could sustain (1 / CPU per poll)."""
        return 1 / self.polling.cpu_per_poll_s

    @property
    def sustainable_reads_per_s(self) -> float:
        """Raw pymodbus reads per s one fully busy core could sustain (1 / CPU per read)."""
        return 1 / self.baseline.cpu_per_read_s

    @property
    def poll_ratio(self) -> float:
        """aqnet's sustainable poll rate ÷ the raw pymodbus read rate (both 1 / CPU)."""
        return self.sustainable_polls_per_s / self.sustainable_reads_per_s

    @property
    def request_ratio(self) -> float:
        """aqnet's sustainable request rate (requests per poll ÷ CPU per poll) ÷ the raw read rate."""
        return self.poll_ratio * self.polling.requests_per_poll


def _percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile of `values` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def replicate(stations: Sequence[Sensor], n: int) -> list[Sensor]:
    """`n` stations: `stations` in turn, copies (ids suffixed "~k") from the second round on, same endpoints."""
    if n < 1 or not stations:
        raise ValueError(f"replicate: expected n >= 1 and at least one station, got n={n}, "
                         f"{len(stations)} station(s)")
    out: list[Sensor] = []
    for i in range(n):
        base, k = stations[i % len(stations)], i // len(stations)
        if k == 0:
            out.append(base)
            continue
        sid = f"{base.id}~{k}"
        out.append(replace(base, id=sid, devices=tuple(replace(d, id=f"{d.id}~{k}", sensor_id=sid)
                                                       for d in base.devices)))
    return out


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class _HeldSignals:
    """The city's signals at one instant, held: each value is computed once, so the simulator's signal model
    (hashing, ~60 µs a value) is not part of what is measured; encoding them stays in the servers' work."""

    def __init__(self, signals: CitySignals, at: datetime) -> None:
        self._signals = signals
        self._at = at
        self._values: dict[tuple[str, str], float] = {}

    def __call__(self, sensor_id: str, variable: str, t: datetime) -> float:
        key = (sensor_id, variable)
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = self._signals.value(sensor_id, variable, self._at)
        return value


async def measure_baseline(servers: Sequence[StationServer], *, duration_s: float, clients: int = 4,
                           rounds: int = 5) -> BaselineResult:
    """Raw pymodbus reads of 40 holding registers, back to back, from `clients` clients (one per server).

    After a warm-up, `duration_s` is split into `rounds` rounds; the round with the median CPU per read is
    returned (the rate of a shared machine wanders by ±20 % from one second to the next).
    """
    if not 1 <= clients <= len(servers):
        raise ValueError(f"clients: expected 1..{len(servers)} (one per station server), got {clients}")
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    targets = []
    loop = asyncio.get_running_loop()

    async def hammer(i: int, end: float) -> int:
        client, unit_id = targets[i]
        reads = 0
        while loop.time() < end:
            response = await client.read_holding_registers(BASELINE_ADDRESS, count=BASELINE_COUNT,
                                                           device_id=unit_id)
            if response.isError() or len(response.registers) != BASELINE_COUNT:
                raise RuntimeError(f"baseline: station {servers[i].sensor.id} unit {unit_id}: holding "
                                   f"{BASELINE_ADDRESS}×{BASELINE_COUNT} answered {response}")
            reads += 1
        return reads

    async def one_round(span_s: float) -> BaselineResult:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        end = loop.time() + span_s
        counts = await asyncio.gather(*(hammer(i, end) for i in range(len(targets))))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return BaselineResult(len(targets), BASELINE_COUNT, sum(counts), wall, cpu, rounds)

    try:
        for server in servers[:clients]:
            unit_id = server.sensor.devices[0].unit_id
            client = AsyncModbusTcpClient(server.host, port=server.port, timeout=2.0, retries=0)
            targets.append((client, unit_id))
            if not await client.connect():
                raise RuntimeError(f"baseline: cannot connect to station {server.sensor.id} at "
                                   f"{server.host}:{server.port}")
        await one_round(min(0.5, duration_s))  # warm-up
        results = [await one_round(duration_s / rounds) for _ in range(rounds)]
    finally:
        for client, _ in targets:
            client.close()
    return sorted(results, key=lambda r: r.cpu_per_read_s)[(rounds - 1) // 2]


async def measure_polling(servers: Sequence[StationServer], stations: Sequence[Sensor], *, interval_s: float,
                          duration_s: float) -> PollingResult:
    """Poll `stations` every `interval_s` with StationPoller; measure the ticks in `duration_s` after warm-up."""
    ticks = max(1, round(duration_s / interval_s))
    names = {d.profile for s in stations for d in s.devices}
    profiles: dict[str, Profile] = {name: load_profile(name) for name in names}
    loop = asyncio.get_running_loop()
    completions: dict[str, list[float]] = defaultdict(list)
    gap_times: list[float] = []

    def on_readings(readings: list[RawReading]) -> None:
        if readings and readings[0].time_source == "received":  # not a backfill (there is none without outages)
            completions[readings[0].device_id].append(loop.time())

    def on_gap(gap: Gap) -> None:
        now = loop.time()
        completions[gap.device_id].append(now)
        gap_times.append(now)

    links = LinkRegistry()
    pollers = [StationPoller(s, links.link_for, profiles, _wall_clock, interval_s=interval_s,
                             on_readings=on_readings, on_gap=on_gap) for s in stations]
    devices = [d.id for s in stations for d in s.devices if d.protocol.startswith("modbus")]
    t0 = loop.time()
    tasks = [asyncio.create_task(p.run(), name=f"bench-poll-{p.sensor.id}") for p in pollers]
    try:
        # the CPU window opens just before the first measured tick (the warm-up tick's polls are done by then)
        await asyncio.sleep(max(0.0, t0 + interval_s - min(0.1, interval_s / 10) - loop.time()))
        for server in servers:
            server.clear_requests()
        window_start = loop.time()
        cpu0 = time.process_time()
        # stop after the last measured tick's reads have begun; stop() lets the reads in progress finish
        await asyncio.sleep(max(0.0, t0 + ticks * interval_s + min(1.0, interval_s / 2) - loop.time()))
        for poller in pollers:
            await poller.stop()
        await asyncio.gather(*tasks)
        cpu = time.process_time() - cpu0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await links.close()
    requests = sum(sum(server.requests.values()) for server in servers)
    done, intervals, delays = 0, [], []
    for device in devices:
        times = sorted(completions.get(device, ()))
        for k in range(1, ticks + 1):
            tick = t0 + k * interval_s
            in_slot = [t for t in times if tick <= t < tick + interval_s]
            if in_slot:
                done += 1
                delays.append(in_slot[0] - tick)
        intervals.extend(b - a for a, b in itertools.pairwise(times) if b >= window_start)
    polls = sum(1 for times in completions.values() for t in times if t >= window_start)
    gaps = sum(1 for t in gap_times if t >= window_start)
    return PollingResult(len(stations), len(devices), len(links.links), interval_s, ticks, len(devices) * ticks,
                         done, gaps, polls, requests, cpu, tuple(intervals), tuple(delays))


async def run(*, stations: int = 190, interval_s: float = 10.0, duration_s: float = 60.0, baseline_s: float = 3.0,
              clients: int | None = None, seed: int = 1) -> ModbusBench:
    """Start the bundled stations' servers, measure the baseline, then aqnet's polling of `stations` stations.

    `clients`: raw pymodbus clients of the baseline, at most one per server (default: one per server, as aqnet
    has one link per server).
    """
    if not interval_s > 0 or not duration_s > 0 or not baseline_s > 0:
        raise ValueError(f"expected interval_s, duration_s and baseline_s > 0, got {interval_s}, {duration_s}, "
                         f"{baseline_s}")
    bundled = [s for s in bundled_network() if s.kind == "station"]
    values = _HeldSignals(CitySignals(seed), _wall_clock())
    servers = [StationServer(s, values, _wall_clock) for s in bundled[:stations]]
    try:
        for server in servers:
            await server.start()
        served = {s.sensor.id: s.endpoint for s in servers}
        network = [s for s in bundled_network(served) if s.id in served]
        baseline = await measure_baseline(servers, duration_s=baseline_s,
                                          clients=min(clients or len(servers), len(servers)))
        polling = await measure_polling(servers, replicate(network, stations), interval_s=interval_s,
                                        duration_s=duration_s)
    finally:
        for server in servers:
            await server.stop()
    return ModbusBench(baseline, polling)


def report(result: ModbusBench) -> list[str]:
    """The aligned lines `main` prints, each figure with its unit."""
    b, p = result.baseline, result.polling
    return [
        (f"raw pymodbus read          {b.reads_per_s:12,.0f} reads/s  ({b.clients} clients, {b.count} registers, "
        f"{b.cpu_per_read_s * 1e6:.0f} µs CPU/read, median of {b.rounds} rounds)"),
        (f"aqnet stations polled      {p.stations:12,d} stations ({p.devices:,d} devices on {p.links} links, "
        f"every {p.interval_s:g} s, {p.ticks} measured ticks)"),
        (f"polls done                 {p.done:12,d} of {p.expected:,d} due  ({p.missed:,d} missed, "
        f"{p.gaps:,d} gaps)"),
        (f"cadence achieved           {p.mean_interval_s:12.3f} s mean interval  "
        f"({p.p95_interval_s:.3f} s p95; completed {p.p95_delay_s:.3f} s after the tick, p95)"),
        f"CPU per poll               {p.cpu_per_poll_s * 1e6:12,.0f} µs  ({p.requests_per_poll:.2f} requests/poll)",
        (f"sustainable poll rate      {result.sustainable_polls_per_s:12,.0f} polls/s  "
        f"({result.poll_ratio:.2f}x the raw {result.sustainable_reads_per_s:,.0f} reads/s per CPU second; "
        f"requests {result.request_ratio:.2f}x)"),
    ]


def parser(prog: str = "python -m bench modbus") -> argparse.ArgumentParser:
    """The modbus benchmark's options."""
    cli = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_options(cli)
    return cli


def add_options(cli: argparse._ActionsContainer) -> None:
    """Add the modbus benchmark's options to `cli` (a parser or an argument group)."""
    cli.add_argument("--stations", type=int, default=190,
                     help="stations polled, copies of the bundled 19 past 19 (default: %(default)s)")
    cli.add_argument("--interval", type=float, default=10.0,
                     help="poll interval of every device, in s (default: %(default)s)")
    cli.add_argument("--duration", type=float, default=60.0,
                     help="measured polling time after the warm-up tick, in s, rounded to whole intervals "
                          "(default: %(default)s)")
    cli.add_argument("--baseline", type=float, default=3.0,
                     help="raw pymodbus measurement time, in s (default: %(default)s)")
    cli.add_argument("--clients", type=int, default=None,
                     help="concurrent raw pymodbus clients, at most one per station server (default: one per server)")


def main(argv: Sequence[str] | None = None, *, options: argparse.Namespace | None = None) -> ModbusBench:
    """Run the benchmark from command-line options, print its lines, and return the result."""
    opts = options if options is not None else parser().parse_args(argv)
    if opts.stations < 1 or (opts.clients is not None and opts.clients < 1):
        raise SystemExit(f"--stations and --clients: expected >= 1, got {opts.stations}, {opts.clients}")
    result = asyncio.run(run(stations=opts.stations, interval_s=opts.interval, duration_s=opts.duration,
                             baseline_s=opts.baseline, clients=opts.clients))
    for line in report(result):
        print(line)
    return result
