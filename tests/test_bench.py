"""`make bench`'s Modbus polling benchmark: it runs end to end on tiny parameters and reports sane figures.

No timing is asserted (the figures depend on the machine); the counts are, since they follow from the network.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench import modbus
from bench.__main__ import main as bench_main
from sensors.network import bundled_network
from sensors.sensor import Sensor


def _stations() -> list[Sensor]:
    return [s for s in bundled_network({}) if s.kind == "station"]


def test_replicate_copies_stations_under_new_ids_with_the_same_endpoints() -> None:
    stations = _stations()
    out = modbus.replicate(stations, 2 * len(stations) + 1)
    assert len(out) == 2 * len(stations) + 1
    assert out[: len(stations)] == stations
    ids = [s.id for s in out]
    assert len(set(ids)) == len(ids)
    device_ids = [d.id for s in out for d in s.devices]
    assert len(set(device_ids)) == len(device_ids)
    copy, original = out[len(stations)], stations[0]
    assert copy.id == f"{original.id}~1"
    assert all(d.sensor_id == copy.id for d in copy.devices)
    assert [(d.host, d.port, d.unit_id, d.profile) for d in copy.devices] == [
        (d.host, d.port, d.unit_id, d.profile) for d in original.devices]
    assert out[-1].id == f"{original.id}~2"
    with pytest.raises(ValueError, match="n >= 1"):
        modbus.replicate(stations, 0)


def test_percentile_is_nearest_rank() -> None:
    assert math.isnan(modbus._percentile([], 0.95))
    assert modbus._percentile([3.0], 0.95) == 3.0
    assert modbus._percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
    assert modbus._percentile([5.0, 1.0, 4.0, 2.0, 3.0], 0.5) == 3.0


def test_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.integration
def test_modbus_bench_polls_three_stations_and_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    result = modbus.main(["--stations", "3", "--interval", "1", "--duration", "2", "--baseline", "0.5"])
    printed = capsys.readouterr().out

    base = result.baseline
    assert base.clients == 3  # one per station server
    assert base.count == 40
    assert base.reads > 0 and base.wall_s > 0 and base.cpu_s > 0
    assert math.isfinite(base.reads_per_s) and base.reads_per_s > 0

    poll = result.polling
    devices = sum(len(s.devices) for s in _stations()[:3])
    assert (poll.stations, poll.devices, poll.links, poll.interval_s, poll.ticks) == (3, devices, 3, 1.0, 2)
    assert poll.expected == devices * 2
    assert 0 < poll.done <= poll.expected and poll.missed == poll.expected - poll.done
    assert poll.gaps == 0  # healthy simulated stations: every read succeeds
    assert poll.polls >= poll.done
    assert poll.requests > 0
    assert len(poll.delays_s) == poll.done and all(d >= 0 for d in poll.delays_s)
    assert poll.intervals_s and all(i > 0 for i in poll.intervals_s)
    assert poll.p95_interval_s >= min(poll.intervals_s)
    assert math.isfinite(poll.mean_interval_s) and math.isfinite(poll.p95_delay_s)
    assert poll.cpu_per_poll_s > 0 and poll.requests_per_poll > 0
    assert result.poll_ratio > 0 and result.request_ratio == pytest.approx(result.poll_ratio * poll.requests_per_poll)
    # a baseline round in each measured tick's quiet part, taken out of the polling figures tick by tick
    assert len(result.rounds) == base.rounds == poll.ticks and replace(base, rounds=1) in result.rounds
    assert len(poll.tick_polls) == len(poll.tick_requests) == len(poll.tick_cpu_s) == poll.ticks
    assert sum(poll.tick_requests) == poll.requests and sum(poll.tick_cpu_s) == pytest.approx(poll.cpu_s)
    assert len(result.tick_request_ratios) == poll.ticks and all(r > 0 for r in result.tick_request_ratios)
    assert result.goal_met == (result.request_ratio >= modbus.GOAL_REQUEST_RATIO and poll.missed == 0)

    lines = printed.splitlines()
    assert lines == modbus.report(result)
    for label, unit in [("raw pymodbus read", "reads/s"), ("aqnet stations polled", "stations"),
                        ("polls done", "missed"), ("cadence achieved", "s mean interval"),
                        ("CPU per poll", "µs"), ("sustainable poll rate", "polls/s"),
                        ("goal", "met")]:
        assert any(line.startswith(label) and unit in line for line in lines), (label, printed)
    assert f"{poll.done:,d} of {poll.expected:,d} due" in printed
    assert f"{poll.devices:,d} devices on 3 links" in printed
