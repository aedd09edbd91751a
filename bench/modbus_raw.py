"""The Modbus benchmark's baseline: bare pymodbus clients reading the simulated stations back to back.

`RawClients` holds one `AsyncModbusTcpClient` per station server (or the first `clients` of them); a `round`
has each read 40 holding registers of its station's history ring (PDU address 5000, which every sim profile
serves) back to back for a span and returns a `BaselineResult`: reads, wall time and process CPU (client and
servers) over the round. `measure_baseline` is warm-up plus `rounds` rounds back to back, the median kept;
`bench.modbus` also runs rounds between the polling ticks, so both halves meet the same machine. No figure here
is asserted by a test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from pymodbus.client import AsyncModbusTcpClient

from simulators.station import StationServer

__all__ = ["BASELINE_ADDRESS", "BASELINE_COUNT", "BaselineResult", "RawClients", "measure_baseline", "median_round"]

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


def median_round(results: Sequence[BaselineResult]) -> BaselineResult:
    """The round with the median CPU per read (the lower middle one of an even count), `rounds` set to all."""
    if not results:
        raise ValueError("median_round: no round")
    middle = sorted(results, key=lambda r: r.cpu_per_read_s)[(len(results) - 1) // 2]
    return BaselineResult(middle.clients, middle.count, middle.reads, middle.wall_s, middle.cpu_s, len(results))


class RawClients:
    """Bare pymodbus clients, one per station server of `servers[:clients]`, for baseline rounds.

    Use as `async with RawClients(servers, clients) as raw: await raw.round(1.0)`.
    """

    def __init__(self, servers: Sequence[StationServer], clients: int) -> None:
        if not 1 <= clients <= len(servers):
            raise ValueError(f"clients: expected 1..{len(servers)} (one per station server), got {clients}")
        self._servers = list(servers[:clients])
        self._targets: list[tuple[Any, int, StationServer]] = []

    @property
    def clients(self) -> int:
        """How many clients read in each round."""
        return len(self._servers)

    async def __aenter__(self) -> Self:
        try:
            for server in self._servers:
                await self._connect(server)
        except BaseException:
            self.close()
            raise
        return self

    async def _connect(self, server: StationServer) -> None:
        unit_id = server.sensor.devices[0].unit_id
        assert unit_id is not None
        client = AsyncModbusTcpClient(server.host, port=server.port, timeout=2.0, retries=0)
        self._targets.append((client, unit_id, server))
        if not await client.connect():
            raise RuntimeError(f"baseline: cannot connect to station {server.sensor.id} at "
                               f"{server.host}:{server.port}")

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every client."""
        for client, _, _ in self._targets:
            client.close()
        self._targets.clear()

    async def round(self, span_s: float) -> BaselineResult:
        """Every client reads back to back for `span_s`: one round."""
        loop = asyncio.get_running_loop()

        async def hammer(client: Any, unit_id: int, server: StationServer, end: float) -> int:
            reads = 0
            while loop.time() < end:
                response = await client.read_holding_registers(BASELINE_ADDRESS, count=BASELINE_COUNT,
                                                               device_id=unit_id)
                if response.isError() or len(response.registers) != BASELINE_COUNT:
                    raise RuntimeError(f"baseline: station {server.sensor.id} unit {unit_id}: holding "
                                       f"{BASELINE_ADDRESS}×{BASELINE_COUNT} answered {response}")
                reads += 1
            return reads

        cpu0, wall0 = time.process_time(), time.perf_counter()
        end = loop.time() + span_s
        counts = await asyncio.gather(*(hammer(c, u, s, end) for c, u, s in self._targets))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return BaselineResult(len(self._targets), BASELINE_COUNT, sum(counts), wall, cpu)


async def measure_baseline(servers: Sequence[StationServer], *, duration_s: float, clients: int = 4,
                           rounds: int = 5) -> BaselineResult:
    """Raw pymodbus reads of 40 holding registers, back to back, from `clients` clients (one per server).

    After a warm-up, `duration_s` is split into `rounds` rounds; the round with the median CPU per read is
    returned (the rate of a shared machine wanders by ±20 % from one second to the next).
    """
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    async with RawClients(servers, clients) as raw:
        await raw.round(min(0.5, duration_s))  # warm-up
        results = [await raw.round(duration_s / rounds) for _ in range(rounds)]
    return median_round(results)
