"""`python -m bench modbus`: aqnet's Modbus polling against the raw pymodbus request rate, measured in one run.

Both halves run in this one process against the same simulated stations (`simulators.station.StationServer`,
one per bundled station, on free ports), so the servers' work is in both figures and they compare across
machines:

- aqnet: `stations` stations (the 19 bundled ones, plus copies of them under new ids that point at the same
  servers, so copies share their original's link) polled by `sensors.modbus.poller.StationPoller` every
  `interval_s` through one `sensors.modbus.link.LinkRegistry`, started all at once as the daemon starts them,
  with an `on_readings` that only records when each device's poll completed. The first tick (connects) is a
  warm-up; the next `duration_s / interval_s` ticks are measured: polls done against expected (a tick with no
  completed read before the next one is a missed poll), the interval between successive polls of a device
  (mean and p95), how long after its tick a poll completed (p95), process CPU per poll and requests per poll.
- baseline (`bench.modbus_raw`): bare `AsyncModbusTcpClient`s, one per station server (or `clients` of them),
  each reading 40 holding registers of its station's history ring back to back. After a warm-up round before
  the pollers start, one round runs in the quiet part of every measured tick (once that tick's polls are done,
  ending well before the next), `baseline_s` in all: the round with the median CPU per read is the baseline.
  Interleaved so, both halves meet the same machine: a shared machine's speed wanders by ±20 % from one
  second to the next. The rounds' CPU and requests are taken out of the polling figures.

A poll is one read of one device (one `read_device`: every request its read plan needs). The sustainable rates
are 1 / CPU per poll and 1 / CPU per read, i.e. what one fully busy core would do; their ratio is printed, per
tick too, with the goal (issue 19: requests at >= 0.6x the raw rate per CPU second, 0 missed polls). No figure
here is asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bench.modbus_raw import (
    BASELINE_ADDRESS,
    BASELINE_COUNT,
    BaselineResult,
    RawClients,
    measure_baseline,
    median_round,
)
from sensors.modbus.link import LinkRegistry
from sensors.modbus.poller import StationPoller
from sensors.modbus.profile import Profile, load_profile
from sensors.network import bundled_network
from sensors.reading import Gap, RawReading
from sensors.sensor import Sensor
from simulators.signals import CitySignals
from simulators.station import StationServer

__all__ = ["BASELINE_ADDRESS", "BASELINE_COUNT", "GOAL_REQUEST_RATIO", "BaselineResult", "ModbusBench",
           "PollingResult", "main", "measure_baseline", "measure_polling", "replicate", "report", "run"]

#: issue 19's goal: aqnet's requests per CPU second at least this share of the raw pymodbus reads per CPU second
GOAL_REQUEST_RATIO = 0.6


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
    requests: int  #: requests the servers received from the pollers in the CPU window
    cpu_s: float  #: process CPU over the CPU window (pollers, links and servers), baseline rounds taken out
    intervals_s: tuple[float, ...]  #: time between successive polls of a device, per device and tick
    delays_s: tuple[float, ...]  #: time from each measured tick to its poll's completion
    #: per measured tick (its window: from just before it to just before the next): polls, requests, CPU
    tick_polls: tuple[int, ...] = ()
    tick_requests: tuple[int, ...] = ()
    tick_cpu_s: tuple[float, ...] = ()

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

    baseline: BaselineResult  #: the median round
    polling: PollingResult
    #: every baseline round, in order: with interleaving, round k ran in measured tick k's quiet part
    rounds: tuple[BaselineResult, ...] = ()

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

    @property
    def tick_request_ratios(self) -> tuple[float, ...]:
        """Per measured tick with its own baseline round: the tick's requests per CPU s ÷ the round's reads
        per CPU s (empty without interleaved rounds)."""
        p = self.polling
        if len(self.rounds) != len(p.tick_cpu_s):
            return ()
        return tuple(requests / cpu * r.cpu_per_read_s
                     for requests, cpu, r in zip(p.tick_requests, p.tick_cpu_s, self.rounds, strict=True)
                     if cpu > 0 and r.reads)

    @property
    def goal_met(self) -> bool:
        """Issue 19's goal: requests at >= GOAL_REQUEST_RATIO of the raw rate per CPU s, and no missed poll."""
        return self.request_ratio >= GOAL_REQUEST_RATIO and self.polling.missed == 0


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


class _Slots:
    """Counts, per tick slot (k: from tick k to tick k + 1), the devices whose first poll of the slot is done,
    and tells when all of them are."""

    def __init__(self, t0: float, interval_s: float, devices: int) -> None:
        self._t0, self._interval_s, self._devices = t0, interval_s, devices
        self._seen: dict[str, int] = {}
        self._done: defaultdict[int, int] = defaultdict(int)
        self._full: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def completed(self, device_id: str, at: float) -> None:
        """`device_id` completed a poll at loop time `at`."""
        k = math.floor((at - self._t0) / self._interval_s)
        if self._seen.get(device_id) == k:
            return
        self._seen[device_id] = k
        self._done[k] += 1
        if self._done[k] >= self._devices:
            self._full[k].set()

    async def wait(self, k: int, deadline: float) -> None:
        """Until every device has completed a poll in slot `k`, or loop time `deadline`."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                await self._full[k].wait()


async def _sleep_until(at: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, at - loop.time()))


async def measure_polling(servers: Sequence[StationServer], stations: Sequence[Sensor], *, interval_s: float,
                          duration_s: float) -> PollingResult:
    """Poll `stations` every `interval_s` with StationPoller; measure the ticks in `duration_s` after warm-up."""
    polling, _ = await _measure(servers, stations, interval_s=interval_s, duration_s=duration_s)
    return polling


async def _measure(servers: Sequence[StationServer], stations: Sequence[Sensor], *, interval_s: float,
                   duration_s: float, raw: RawClients | None = None,
                   raw_round_s: float = 0.0) -> tuple[PollingResult, list[BaselineResult]]:
    """`measure_polling`, with a `raw` round of up to `raw_round_s` in the quiet part of every measured tick."""
    ticks = max(1, round(duration_s / interval_s))
    names = {d.profile for s in stations for d in s.devices}
    profiles: dict[str, Profile] = {name: load_profile(name) for name in names}
    loop = asyncio.get_running_loop()
    completions: dict[str, list[float]] = defaultdict(list)
    gap_times: list[float] = []
    devices = [d.id for s in stations for d in s.devices if d.protocol.startswith("modbus")]
    t0 = loop.time()
    slots = _Slots(t0, interval_s, len(devices))

    def on_readings(readings: list[RawReading]) -> None:
        if readings and readings[0].time_source == "received":  # not a backfill (there is none without outages)
            now = loop.time()
            completions[readings[0].device_id].append(now)
            slots.completed(readings[0].device_id, now)

    def on_gap(gap: Gap) -> None:
        now = loop.time()
        completions[gap.device_id].append(now)
        gap_times.append(now)
        slots.completed(gap.device_id, now)

    links = LinkRegistry()
    pollers = [StationPoller(s, links.link_for, profiles, _wall_clock, interval_s=interval_s,
                             on_readings=on_readings, on_gap=on_gap) for s in stations]
    tasks = [asyncio.create_task(p.run(), name=f"bench-poll-{p.sensor.id}") for p in pollers]
    rounds: list[BaselineResult] = []
    lead = min(0.1, interval_s / 10)  # a window opens this long before its tick
    # (loop time, process CPU, requests the servers received, baseline rounds so far) at each window's start
    marks: list[tuple[float, float, int, int]] = []

    def mark() -> None:
        marks.append((loop.time(), time.process_time(), sum(sum(s.requests.values()) for s in servers),
                      len(rounds)))

    try:
        # the CPU window opens just before the first measured tick (the warm-up tick's polls are done by then)
        await _sleep_until(t0 + interval_s - lead)
        for server in servers:
            server.clear_requests()
        for k in range(1, ticks + 1):
            mark()
            tick = t0 + k * interval_s
            if raw is not None:
                await slots.wait(k, tick + interval_s / 2)
                span = min(raw_round_s, tick + 0.8 * interval_s - lead - loop.time())  # leave the last 20 % quiet
                if span > 0:
                    rounds.append(await raw.round(span))
            if k < ticks:
                await _sleep_until(tick + interval_s - lead)
        # stop after the last measured tick's reads have begun; stop() lets the reads in progress finish
        await _sleep_until(t0 + ticks * interval_s + min(1.0, interval_s / 2))
        for poller in pollers:
            await poller.stop()
        await asyncio.gather(*tasks)
        mark()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await links.close()
    window_start = marks[0][0]
    tick_polls, tick_requests, tick_cpu = [], [], []
    for (start, cpu0, req0, r0), (end, cpu1, req1, r1) in itertools.pairwise(marks):
        inside = rounds[r0:r1]
        tick_polls.append(sum(1 for times in completions.values() for t in times if start <= t < end))
        tick_requests.append(req1 - req0 - sum(r.reads for r in inside))
        tick_cpu.append(cpu1 - cpu0 - sum(r.cpu_s for r in inside))
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
    polling = PollingResult(len(stations), len(devices), len(links.links), interval_s, ticks, len(devices) * ticks,
                            done, gaps, polls, sum(tick_requests), sum(tick_cpu), tuple(intervals), tuple(delays),
                            tuple(tick_polls), tuple(tick_requests), tuple(tick_cpu))
    return polling, rounds


async def run(*, stations: int = 190, interval_s: float = 10.0, duration_s: float = 60.0, baseline_s: float = 3.0,
              clients: int | None = None, seed: int = 1) -> ModbusBench:
    """Start the bundled stations' servers and poll `stations` stations, with the raw baseline's rounds
    (`baseline_s` in all) between the ticks.

    `clients`: raw pymodbus clients of the baseline, at most one per server (default: one per server, as aqnet
    has one link per server).
    """
    if not interval_s > 0 or not duration_s > 0 or not baseline_s > 0:
        raise ValueError(f"expected interval_s, duration_s and baseline_s > 0, got {interval_s}, {duration_s}, "
                         f"{baseline_s}")
    bundled = [s for s in bundled_network() if s.kind == "station"]
    values = _HeldSignals(CitySignals(seed), _wall_clock())
    servers = [StationServer(s, values, _wall_clock) for s in bundled[:stations]]
    ticks = max(1, round(duration_s / interval_s))
    try:
        for server in servers:
            await server.start()
        served = {s.sensor.id: s.endpoint for s in servers}
        network = [s for s in bundled_network(served) if s.id in served]
        async with RawClients(servers, min(clients or len(servers), len(servers))) as raw:
            await raw.round(min(0.5, baseline_s))  # warm-up
            polling, rounds = await _measure(servers, replicate(network, stations), interval_s=interval_s,
                                             duration_s=duration_s, raw=raw, raw_round_s=baseline_s / ticks)
            if not rounds:  # no tick left room for a round: measure the baseline after the polling
                rounds = [await raw.round(baseline_s / 5) for _ in range(5)]
    finally:
        for server in servers:
            await server.stop()
    return ModbusBench(median_round(rounds), polling, tuple(rounds))


def report(result: ModbusBench) -> list[str]:
    """The aligned lines `main` prints, each figure with its unit."""
    b, p = result.baseline, result.polling
    per_tick = result.tick_request_ratios
    spread = (f"per tick {min(per_tick):.2f}x..{max(per_tick):.2f}x, median {statistics.median(per_tick):.2f}x"
              if per_tick else "no per-tick figure")
    verdict = "met" if result.goal_met else "NOT met"
    return [
        (f"raw pymodbus read          {b.reads_per_s:12,.0f} reads/s  ({b.clients} clients, {b.count} registers, "
        f"{b.cpu_per_read_s * 1e6:.0f} µs CPU/read, median of {b.rounds} rounds between the ticks)"),
        (f"aqnet stations polled      {p.stations:12,d} stations ({p.devices:,d} devices on {p.links} links, "
        f"every {p.interval_s:g} s, {p.ticks} measured ticks)"),
        (f"polls done                 {p.done:12,d} of {p.expected:,d} due  ({p.missed:,d} missed, "
        f"{p.gaps:,d} gaps)"),
        (f"cadence achieved           {p.mean_interval_s:12.3f} s mean interval  "
        f"({p.p95_interval_s:.3f} s p95; completed {p.p95_delay_s:.3f} s after the tick, p95)"),
        (f"CPU per poll               {p.cpu_per_poll_s * 1e6:12,.0f} µs  ({p.requests_per_poll:.2f} requests/poll, "
        f"{p.cpu_per_poll_s / p.requests_per_poll * 1e6:,.0f} µs CPU/request)"),
        (f"sustainable poll rate      {result.sustainable_polls_per_s:12,.0f} polls/s  "
        f"({result.poll_ratio:.2f}x the raw {result.sustainable_reads_per_s:,.0f} reads/s per CPU second; "
        f"requests {result.request_ratio:.2f}x)"),
        (f"goal                       {verdict:>12s}  (requests >= {GOAL_REQUEST_RATIO:.2f}x raw per CPU second: "
        f"{result.request_ratio:.2f}x, {spread}; 0 missed polls: {p.missed:,d} missed)"),
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
