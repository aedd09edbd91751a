"""A Modbus client that is not ours (Debian's mbpoll) reads a simulated bundled station and gets the documented
values: the city signals of `simulators.signals` at the simulated instant, in the units the analysers report
(`REPORTED_UNITS`: ppb, ppm, µg/m³, mmHg...), at the addresses, types and orders of the sim-* profiles; and
the faults a scenario injects show to it as they would on site."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from aqnet.localstack import free_port
from sensors.modbus.profile import load_profile
from sensors.network import bundled_network
from sensors.sensor import Sensor
from simulators.faults import FaultKind, FaultPlan, FaultSpec
from simulators.network_sim import SimulatedNetwork
from simulators.signals import REPORTED_UNITS, CitySignals
from tests.sensors.modbus.test_mbpoll import from_words, mbpoll, mbpoll_args

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mbpoll") is None,
                       reason="mbpoll not installed (Debian package mbpoll; deploy/install-system.sh installs it)"),
]

T = datetime(2026, 3, 3, 12, 30, tzinfo=UTC)  # 07:30 in Bogotá, a Tuesday: the morning rush
SEED = 4
WORD_ORDER = FaultSpec(kind=FaultKind.WORD_ORDER, start=T + timedelta(hours=1), end=T + timedelta(hours=2),
                       sensors=frozenset({"KEN"}), devices=frozenset({"KEN-pm"}))
EXCEPTION = FaultSpec(kind=FaultKind.MODBUS_EXCEPTION, start=T + timedelta(hours=3), end=T + timedelta(hours=4),
                      sensors=frozenset({"KEN"}), devices=frozenset({"KEN-o3"}), params={"code": 4})


class Clock:
    def __init__(self) -> None:
        self.t = T

    def __call__(self) -> datetime:
        return self.t


def kennedy(port: int) -> Sensor:
    return next(s for s in bundled_network({"KEN": ("127.0.0.1", port)}) if s.id == "KEN")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Sensor, SimulatedNetwork, Clock]]:
    port = free_port()
    station = kennedy(port)
    clock = Clock()
    net = SimulatedNetwork([station], CitySignals(SEED), clock, plan=FaultPlan([WORD_ORDER, EXCEPTION]))
    await net.start()
    try:
        yield station, net, clock
    finally:
        await net.stop()


async def test_mbpoll_reads_every_variable_of_a_bundled_station(
        served: tuple[Sensor, SimulatedNetwork, Clock]) -> None:
    station, _, _ = served
    signals = CitySignals(SEED)
    port = station.devices[0].port or 0
    checked = []
    for device in station.devices:
        profile = load_profile(device.profile)
        for name in device.variables:
            spec = profile.variable(name)
            assert spec.unit == REPORTED_UNITS[name]  # the documented unit of each simulated analyser
            args, kind = mbpoll_args(spec)
            rows = await mbpoll(port, device.unit_id or 0, *args)
            if kind == "hex":
                raw = from_words([int(text, 16) for _, text, _ in rows], spec)
            elif kind == "int16":
                raw = float(rows[0][2] if rows[0][2] is not None else rows[0][1])
            else:
                raw = float(rows[0][1])
            theirs = raw * spec.scale + spec.offset
            documented = signals.value("KEN", name, T)
            # mbpoll prints 6 significant digits; integer registers hold the value to their scale
            assert theirs == pytest.approx(documented, rel=1e-5, abs=abs(spec.scale) / 2 + 1e-9), \
                f"{device.id} {name} via mbpoll {' '.join(args)}"
            checked.append(name)
    assert set(checked) == set(station.variables)
    assert {"pm25", "no2", "o3", "co", "relativehumidity", "wind_speed"} <= set(checked)


async def test_mbpoll_sees_the_scenario_faults(served: tuple[Sensor, SimulatedNetwork, Clock]) -> None:
    station, net, clock = served
    port = station.devices[0].port or 0
    spec = load_profile("sim-pm").variable("pm25")
    assert (spec.data_type, spec.order) == ("float32", "ABCD")
    read_abcd = ["-t", "3:float", "-B", "-r", str(spec.pdu_address + 1), "-c", "1"]
    read_cdab = ["-t", "3:float", "-r", str(spec.pdu_address + 1), "-c", "1"]
    clock.t = T + timedelta(hours=1, minutes=30)
    await net.apply_faults()
    truth = CitySignals(SEED).value("KEN", "pm25", clock.t)
    # word_order: the analyser now serves CDAB, so the profile's ABCD read is wrong and mbpoll's default is right
    assert float((await mbpoll(port, 1, *read_cdab))[0][1]) == pytest.approx(truth, rel=1e-5)
    assert float((await mbpoll(port, 1, *read_abcd))[0][1]) != pytest.approx(truth, rel=1e-2)
    clock.t = T + timedelta(hours=3, minutes=30)
    await net.apply_faults()
    assert float((await mbpoll(port, 1, *read_abcd))[0][1]) == pytest.approx(
        CitySignals(SEED).value("KEN", "pm25", clock.t), rel=1e-5)
    o3 = load_profile("sim-o3").variable("o3")
    with pytest.raises(AssertionError, match="(?i)exception|failure"):  # mbpoll exits non-zero on exception 4
        await mbpoll(port, 3, *mbpoll_args(o3)[0])
