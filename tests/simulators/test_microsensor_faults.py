"""Every fault a microsensor can carry reaches the MQTT driver and is handled as the driver documents.

`CASES` maps each FaultKind that applies to microsensors (every kind but the Modbus ones) to a check; a new
FaultKind without a case fails `test_every_microsensor_fault_kind_has_a_case`. The simulated messages go through
`sensors.mqtt.subscriber.MqttSubscriber.handle` (decode → attribute → submit, or reject and ack), then through
ingest's `normalise` and `qc.check`, as in the daemon:
- garbage, truncated → rejected (dead letter) with a payload reason, and acknowledged (never redelivered forever);
- duplicate → the same readings twice (same key and value: the writer stores one, a duplicate, not a conflict);
- out_of_order → the late reading keeps its device time and does not disturb QC of the newer ones;
- clock_skew → CLOCK_SKEW (excluded from averages);
- broker_disconnect → an aqnet board's buffered readings arrive as one batch with their own times, STALE when
  older than an hour; a PurpleAir's readings of that time are lost;
- dropout → nothing; flatline → FLATLINE; spike → SPIKE; negative → NEGATIVE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingest.normalise import normalise, site_default_conditions
from ingest.qc import QCState, check
from ingest.reading import QC, Reading
from sensors.mqtt.client import Message
from sensors.mqtt.subscriber import Intake, MqttSubscriber, Rejection
from sensors.network import bundled_network
from sensors.reading import RawReading
from simulators.faults import MODBUS_ONLY, FaultKind, FaultPlan, FaultSpec
from simulators.microsensor import Outgoing, SimulatedMicrosensor
from simulators.signals import CitySignals

BOGOTA = ZoneInfo("America/Bogota")
NETWORK = bundled_network()
SENSORS = {s.id: s for s in NETWORK}
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
STEP = timedelta(seconds=60)
#: the fault window: steps 10..19 of 30
FAULT_START, FAULT_END = T0 + 10 * STEP, T0 + 20 * STEP
LATENCY = timedelta(seconds=2)  #: broker delivery time


class _Client:
    client_id = "aqnet-test"

    def __init__(self) -> None:
        self.acked: list[Message] = []

    def start(self) -> None:
        pass

    def ack(self, message: Message) -> None:
        self.acked.append(message)

    def taken(self) -> None:
        pass


@dataclass
class Run:
    """What the driver did with a simulated microsensor's messages."""

    messages: list[tuple[datetime, Outgoing]] = field(default_factory=list)  #: (received at, message)
    submitted: list[list[RawReading]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    acked: int = 0
    readings: list[Reading] = field(default_factory=list)  #: normalised and QC'd, in arrival order

    def series(self, variable: str, device: str | None = None) -> list[Reading]:
        return [r for r in self.readings if r.variable == variable and (device is None or r.device_id == device)]


async def drive(sensor_id: str, faults: list[FaultSpec], *, steps: int = 30, step: timedelta = STEP) -> Run:
    sim = SimulatedMicrosensor(SENSORS[sensor_id], CitySignals(3), faults=FaultPlan(faults), seed=3)
    run = Run()
    client = _Client()

    async def submit(readings: list[RawReading], ack: Callable[[], None]) -> None:
        run.submitted.append(readings)
        ack()

    async def reject(rejection: Rejection, ack: Callable[[], None]) -> None:
        run.rejected.append(rejection)
        ack()

    subscriber = MqttSubscriber(lambda _on_message: client, Intake(NETWORK, tz=BOGOTA),  # type: ignore[arg-type]
                                submit=submit, reject=reject)
    mids = count(1)
    for k in range(steps):
        t = T0 + k * step
        for message in sim.step(t):
            received = t + LATENCY
            run.messages.append((received, message))
            await subscriber.handle(Message(message.topic, message.payload, 1, next(mids), False, received))
    run.acked = len(client.acked)
    site = site_default_conditions()
    states: dict[tuple[str, str], QCState | None] = {}
    for batch in run.submitted:
        for raw in batch:
            key = (raw.device_id, raw.variable)
            reading, states[key] = check(normalise(raw, site), states.get(key), raw.received_at)
            run.readings.append(reading)
    return run


def fault(kind: FaultKind, sensor: str, variable: str | None = None, **params: Any) -> FaultSpec:
    return FaultSpec(kind, FAULT_START, FAULT_END, frozenset({sensor}), variable, params)


def _in_fault(t: datetime) -> bool:
    return FAULT_START <= t < FAULT_END


async def case_dropout() -> None:
    run = await drive("MS01", [fault(FaultKind.DROPOUT, "MS01")])
    times = [r.time for r in run.series("pm25")]
    assert len(times) == 20 and not any(_in_fault(t) for t in times)
    one = await drive("MS01", [fault(FaultKind.DROPOUT, "MS01", "pm10")])  # one variable silent
    assert len(one.series("pm10")) == 20 and len(one.series("pm25")) == 30


async def case_flatline() -> None:
    run = await drive("MS01", [FaultSpec(FaultKind.FLATLINE, T0 + 5 * STEP, T0 + 7 * 60 * STEP,
                                         frozenset({"MS01"}), "temperature")], steps=7 * 60)
    temps = run.series("temperature")
    stuck = [r for r in temps if T0 + 5 * STEP <= r.time < T0 + 7 * 60 * STEP]
    assert len({r.raw_value for r in stuck}) == 1
    assert any(r.flags & QC.FLATLINE for r in stuck)  # temperature: FLATLINE after 6 h (ingest.qc)
    assert not any(r.flags & QC.FLATLINE for r in run.series("pm25"))


async def case_spike() -> None:
    run = await drive("MS01", [fault(FaultKind.SPIKE, "MS01", "pm25", factor=60, every_s=300, width_s=60)])
    spiked = [r for r in run.series("pm25") if r.flags & QC.SPIKE]
    assert spiked and all(_in_fault(r.time) or _in_fault(r.time - STEP) for r in spiked)


async def case_negative() -> None:
    run = await drive("MS11", [fault(FaultKind.NEGATIVE, "MS11", "pm25", value=-4.0)])  # airrohr
    negative = [r for r in run.series("pm25") if r.flags & QC.NEGATIVE]
    assert len(negative) == 10 and all(r.raw_value == -4.0 for r in negative)


async def _rejected_and_acked(kind: FaultKind) -> None:
    for sensor in ("MS01", "MS11", "MS12"):  # aqnet JSON, airrohr, PurpleAir
        run = await drive(sensor, [fault(kind, sensor)])
        assert len(run.rejected) == 10, sensor
        assert {r.reason for r in run.rejected} <= {"not_json", "schema"}, sensor
        assert all(r.source == "mqtt" and r.payload for r in run.rejected)
        assert run.acked == 30  # rejected ones are acknowledged too: never redelivered forever
        assert len(run.submitted) == 20


async def case_garbage() -> None:
    await _rejected_and_acked(FaultKind.GARBAGE)


async def case_truncated() -> None:
    await _rejected_and_acked(FaultKind.TRUNCATED)


async def case_duplicate() -> None:
    run = await drive("MS01", [fault(FaultKind.DUPLICATE, "MS01")])
    assert len(run.submitted) == 40
    keys = [(r.sensor_id, r.device_id, r.variable, r.time, r.value) for batch in run.submitted for r in batch]
    assert len(set(keys)) == 30 * 4  # every duplicate has the key and value of its first delivery
    twice = [r for r in run.series("pm25") if _in_fault(r.time)]
    assert len(twice) == 20
    for first, again in zip(twice[::2], twice[1::2], strict=True):
        assert (first.time, first.value, first.flags & ~(QC.SPIKE | QC.FLATLINE | QC.STALE)) == \
            (again.time, again.value, again.flags & ~(QC.SPIKE | QC.FLATLINE | QC.STALE))


async def case_out_of_order() -> None:
    for sensor in ("MS01", "MS12"):  # formats with a device time
        run = await drive(sensor, [fault(FaultKind.OUT_OF_ORDER, sensor, delay_s=180)])
        times = [r.time for r in run.series("pm25", sensor)]
        assert sorted(times) == [T0 + k * STEP for k in range(30)]
        assert times != sorted(times)  # some arrived after newer ones
        late = [r for r in run.series("pm25", sensor) if r.received_at - r.time > 2 * STEP]
        assert len(late) == 10 and not any(r.flags & (QC.SPIKE | QC.FLATLINE) for r in late)


async def case_clock_skew() -> None:
    for sensor in ("MS01", "MS12"):
        run = await drive(sensor, [fault(FaultKind.CLOCK_SKEW, sensor, skew_s=900)])
        skewed = [r for r in run.series("temperature") if r.flags & QC.CLOCK_SKEW]
        assert len(skewed) == 10 and all(r.time - r.received_at > timedelta(seconds=800) for r in skewed)
        assert all(r.flags & QC.CLOCK_SKEW for r in skewed)
    # a behind-clock device is not skewed ahead: no flag (its readings are late, not from the future)
    behind = await drive("MS01", [fault(FaultKind.CLOCK_SKEW, "MS01", skew_s=-120)])
    assert not any(r.flags & QC.CLOCK_SKEW for r in behind.readings)


async def case_broker_disconnect() -> None:
    long = FaultSpec(FaultKind.BROKER_DISCONNECT, T0 + 10 * STEP, T0 + 80 * STEP, frozenset({"MS01"}))
    run = await drive("MS01", [long], steps=100)
    batch = next(m for _, m in run.messages if b'"readings"' in m.payload)
    assert batch.time == T0 + 80 * STEP
    pm25 = run.series("pm25")
    assert sorted(r.time for r in pm25) == [T0 + k * STEP for k in range(100)]  # nothing lost
    buffered = [r for r in pm25 if T0 + 10 * STEP <= r.time < T0 + 80 * STEP]
    assert all(r.received_at == T0 + 80 * STEP + LATENCY for r in buffered)
    assert all(bool(r.flags & QC.STALE) == (r.received_at - r.time > timedelta(hours=1)) for r in buffered)
    assert any(r.flags & QC.STALE for r in buffered)
    lost = await drive("MS12", [fault(FaultKind.BROKER_DISCONNECT, "MS12")])  # PurpleAir does not buffer
    assert len(lost.series("pm25", "MS12")) == 20


CASES: dict[FaultKind, Callable[[], Any]] = {
    FaultKind.DROPOUT: case_dropout, FaultKind.FLATLINE: case_flatline, FaultKind.SPIKE: case_spike,
    FaultKind.NEGATIVE: case_negative, FaultKind.GARBAGE: case_garbage, FaultKind.TRUNCATED: case_truncated,
    FaultKind.DUPLICATE: case_duplicate, FaultKind.OUT_OF_ORDER: case_out_of_order,
    FaultKind.CLOCK_SKEW: case_clock_skew, FaultKind.BROKER_DISCONNECT: case_broker_disconnect,
}


def test_every_microsensor_fault_kind_has_a_case() -> None:
    assert set(CASES) == set(FaultKind) - MODBUS_ONLY


@pytest.mark.parametrize("kind", sorted(set(FaultKind) - MODBUS_ONLY))
async def test_fault_reaches_the_mqtt_driver(kind: FaultKind) -> None:
    await CASES[kind]()


async def test_no_fault_no_rejection_and_deterministic() -> None:
    a, b = await drive("MS12", []), await drive("MS12", [])
    assert not a.rejected and len(a.submitted) == 30
    assert [m.payload for _, m in a.messages] == [m.payload for _, m in b.messages]


def test_faults_of_other_sensors_do_not_apply() -> None:
    sim = SimulatedMicrosensor(SENSORS["MS01"], CitySignals(3), faults=FaultPlan([fault(FaultKind.GARBAGE, "MS02")]))
    (message,) = sim.step(FAULT_START)
    assert message.payload.startswith(b"{")
