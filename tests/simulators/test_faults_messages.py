"""Message faults (microsensors) reach the MQTT driver and are handled as it documents.

What the fleet would send (`simulators.microsensor.SimulatedMicrosensor.step`, the scenario's FaultPlan applied)
goes through the MQTT driver's `Intake` (the decoders and the device directory the subscriber and the HTTP
intake share) and ingest's QC: a garbage or truncated payload is a PayloadError (dead-lettered by the
subscriber), a duplicate decodes to the very same readings (the writer's idempotent insert keeps one), an
out-of-order message keeps its device time and arrives after newer ones, a skewed clock earns CLOCK_SKEW, and a
broker disconnect is buffered by an aqnet board and delivered as one batch on reconnect (a PurpleAir loses it).
The keys of `MESSAGE_CASES` join `test_faults_drivers.STATION_CASES` to cover every FaultKind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest import qc
from ingest.normalise import normalise, site_default_conditions
from ingest.reading import QC
from sensors.mqtt.payloads import PayloadError
from sensors.mqtt.subscriber import Intake
from sensors.network import bundled_network
from sensors.reading import RawReading
from simulators.faults import FaultKind, FaultPlan, FaultSpec
from simulators.microsensor import Outgoing, SimulatedMicrosensor
from simulators.signals import CitySignals

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NETWORK = bundled_network()
BY_ID = {s.id: s for s in NETWORK}
INTAKE = Intake(NETWORK, tz=ZoneInfo("America/Bogota"))
#: one microsensor of each payload format in the bundled network
FORMATS = {"aqnet-json": "MS03", "airrohr": "MS11", "airrohr-http": "MS13", "purpleair": "MS12"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def device(sid: str, *faults: FaultSpec) -> SimulatedMicrosensor:
    return SimulatedMicrosensor(BY_ID[sid], CitySignals(5), faults=FaultPlan(faults), seed=5)


def fault(kind: FaultKind, sid: str, start: float = 10, end: float = 20, **params: float) -> FaultSpec:
    return FaultSpec(kind=kind, start=at(start), end=at(end), sensors=frozenset({sid}), params=params)


def decode(message: Outgoing, received: datetime) -> list[RawReading]:
    fmt = "airrohr" if message.transport == "http" else None
    return list(INTAKE.resolve(message.topic, message.payload, None, fmt=fmt, received_at=received).readings)


def run(sim: SimulatedMicrosensor, minutes: list[float]) -> list[tuple[float, Outgoing]]:
    """Step the device at each minute: (minute sent, message) in send order."""
    return [(m, out) for m in minutes for out in sim.step(at(m))]


def case_garbage_and_truncated(kind: FaultKind) -> None:
    for fmt, sid in FORMATS.items():
        sent = run(device(sid, fault(kind, sid)), [5, 15, 25])
        assert [m for m, _ in sent] == [5, 15, 25], fmt
        decode(sent[0][1], at(5))
        with pytest.raises(PayloadError):  # the subscriber dead-letters it (reason: the PayloadError's)
            decode(sent[1][1], at(15))
        assert decode(sent[2][1], at(25)), fmt  # and the device's next message is fine again


def case_duplicate() -> None:
    for fmt, sid in FORMATS.items():
        sent = run(device(sid, fault(FaultKind.DUPLICATE, sid)), [5, 15])
        assert [m for m, _ in sent] == [5, 15, 15], fmt
        first, again = decode(sent[1][1], at(15)), decode(sent[2][1], at(15))
        # same sensor, device, variable, time and value: the writer's idempotent insert stores it once
        assert first == again and first


def case_out_of_order() -> None:
    sid = FORMATS["aqnet-json"]
    sent = run(device(sid, fault(FaultKind.OUT_OF_ORDER, sid, 10, 11, delay_s=180)), [9, 10, 11, 12, 13, 14])
    assert [m for m, _ in sent] == [9, 11, 12, 13, 13, 14]  # minute 10's message comes out at 13, after 12's
    late = [decode(out, at(m)) for m, out in sent][4]
    assert {r.time for r in late} == {at(10)}  # it keeps its device time
    states: dict[tuple[str, str], qc.QCState | None] = {}
    for m, out in sent:
        for raw in decode(out, at(m)):
            reading, states[(raw.device_id, raw.variable)] = qc.check(
                normalise(raw, site_default_conditions()), states.get((raw.device_id, raw.variable)), at(m))
            if raw.time == at(10):  # older than what came before it: not judged against the newer one
                assert not reading.flags & (QC.SPIKE | QC.FLATLINE | QC.CLOCK_SKEW)


def case_clock_skew() -> None:
    sid = FORMATS["aqnet-json"]
    sent = run(device(sid, fault(FaultKind.CLOCK_SKEW, sid, skew_s=900)), [5, 15])
    ok, skewed = decode(sent[0][1], at(5)), decode(sent[1][1], at(15))
    assert {r.time for r in skewed} == {at(30)}  # 15 minutes ahead of the true time
    flags = [qc.check(normalise(r, site_default_conditions()), None, at(m))[0].flags
             for m, rs in ((5, ok), (15, skewed)) for r in rs]
    assert all(f & QC.CLOCK_SKEW for f in flags[len(ok):])  # excluded from averages (ingest.reading.EXCLUDED)
    assert not any(f & QC.CLOCK_SKEW for f in flags[:len(ok)])


def case_broker_disconnect() -> None:
    sid = FORMATS["aqnet-json"]
    sent = run(device(sid, fault(FaultKind.BROKER_DISCONNECT, sid, 10, 13)), [9, 10, 11, 12, 13])
    assert [m for m, _ in sent] == [9, 13, 13]  # nothing while disconnected, then the buffer and the live one
    batch = decode(sent[1][1], at(13))
    assert {r.time for r in batch} == {at(10), at(11), at(12)}  # every buffered reading, with its own time
    pa = FORMATS["purpleair"]
    lost = device(pa, fault(FaultKind.BROKER_DISCONNECT, pa, 10, 13))
    assert [m for m, _ in run(lost, [9, 10, 11, 12, 13])] == [9, 13]  # PurpleAir firmware does not buffer
    assert lost.lost == 3


MESSAGE_CASES: dict[FaultKind, Callable[[], None]] = {
    FaultKind.GARBAGE: lambda: case_garbage_and_truncated(FaultKind.GARBAGE),
    FaultKind.TRUNCATED: lambda: case_garbage_and_truncated(FaultKind.TRUNCATED),
    FaultKind.DUPLICATE: case_duplicate,
    FaultKind.OUT_OF_ORDER: case_out_of_order,
    FaultKind.CLOCK_SKEW: case_clock_skew,
    FaultKind.BROKER_DISCONNECT: case_broker_disconnect,
}


@pytest.mark.parametrize("kind", list(MESSAGE_CASES), ids=str)
def test_message_fault_reaches_the_mqtt_driver(kind: FaultKind) -> None:
    MESSAGE_CASES[kind]()


def test_microsensor_value_faults_and_silence() -> None:
    sid = FORMATS["aqnet-json"]
    sim = device(sid, fault(FaultKind.DROPOUT, sid, 10, 20),
                 FaultSpec(kind=FaultKind.NEGATIVE, start=at(30), end=at(40), sensors=frozenset({sid}),
                           variable="pm25", params={"value": -7}))
    assert sim.step(at(15)) == []  # a dropout: the device says nothing
    (message,) = sim.step(at(35))
    pm25 = [r for r in decode(message, at(35)) if r.variable == "pm25"]
    assert pm25[0].value == -7
    assert normalise(pm25[0], site_default_conditions()).flags & QC.NEGATIVE
