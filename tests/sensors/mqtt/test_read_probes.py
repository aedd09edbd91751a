"""sensors/mqtt/client/probes.py: a delivered message proves read access to its filters and keeps the other
probes waiting while the session's backlog is read (after a restart they queue behind it)."""

from __future__ import annotations

from sensors.mqtt.client.probes import ReadProbes
from sensors.mqtt.directory import topic_matches as _matches


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _probes(clock: Clock) -> ReadProbes:
    probes = ReadProbes("aqnet-daemon", 10.0, clock)
    mids = iter(range(1, 100))
    probes.start(["aqnet/+/readings", "airrohr/+/data"], lambda topic, payload: next(mids))
    return probes


def test_a_delivery_settles_the_filters_it_matches() -> None:
    clock = Clock()
    probes = _probes(clock)
    assert probes.delivered("aqnet/MS01/readings") == ["aqnet/+/readings"]
    assert probes.pending  # airrohr still waits
    assert probes.delivered("aqnet/MS02/readings") == []


def test_deliveries_move_the_deadline_on_and_silence_lets_it_pass() -> None:
    clock = Clock()
    probes = _probes(clock)
    for t in range(1, 30):  # a backlog of aqnet messages read for 29 s: the airrohr probe waits behind it
        clock.t = float(t)
        probes.delivered("aqnet/MS01/readings")
        assert probes.overdue() == []
    clock.t = 29 + 10.0  # then nothing for 10 s
    assert probes.overdue() == [("airrohr/+/data", "airrohr/aqnet-daemon/data")]


def test_without_deliveries_the_probes_are_overdue_after_verify_read_s() -> None:
    clock = Clock()
    probes = _probes(clock)
    clock.t = 9.9
    assert probes.overdue() == []
    clock.t = 10.0
    assert sorted(f for f, _ in probes.overdue()) == ["airrohr/+/data", "aqnet/+/readings"]


def test_filter_matching() -> None:
    assert _matches("aqnet/+/readings", "aqnet/MS01/readings")
    assert not _matches("aqnet/+/readings", "aqnet/MS01/other")
    assert not _matches("aqnet/+/readings", "aqnet/MS01/readings/x")
    assert _matches("aqnet/#", "aqnet/MS01/readings")
    assert _matches("#", "a/b")
    assert not _matches("a/b", "a")
