"""The pure parts of a daemon with several processes: the station shares, the role, the metrics merge, the
conditions exchange and the pipe's frames (aqnet.daemon.processes, sensors.modbus.shares, aqnet.metrics,
aqnet.daemon.workers, aqnet.daemon.ipc)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aqnet.daemon.ipc import MAX_FRAME, Channel, FrameError, decode_length, encode_frame
from aqnet.daemon.processes import Role
from aqnet.daemon.workers import ConditionsExchange
from aqnet.metrics import ProcessesCollector, merge_processes
from ingest.normalise import ConditionsBook
from sensors.modbus.link import link_key
from sensors.modbus.shares import link_groups, process_of, share_of
from sensors.modbus.supervisor import PollTarget
from sensors.network import bundled_network
from sensors.sensor import Device, Sensor

T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _station(sid: str, *endpoints: tuple[str, int]) -> PollTarget:
    devices = tuple(Device(id=f"{sid}-{i}", sensor_id=sid, protocol="modbus-tcp", profile="p", variables=("no2",),
                           host=h, port=p, unit_id=i + 1) for i, (h, p) in enumerate(endpoints))
    return PollTarget(Sensor(id=sid, name=sid, kind="station", lat=4.6, lon=-74.1, devices=devices), 10.0)


# --------------------------------------------------------------------------------------------- station shares

def test_every_station_goes_to_exactly_one_process_and_a_link_never_to_two() -> None:
    targets = {f"S{i:03d}": _station(f"S{i:03d}", (f"10.0.{i % 37}.1", 502)) for i in range(190)}
    # stations that share a gateway, and one that bridges two gateways
    targets["BR1"] = _station("BR1", ("10.0.1.1", 502), ("10.0.2.1", 502))
    for count in (1, 2, 3, 4):
        shares = [share_of(targets, i, count) for i in range(count)]
        owners = [set(share) for share in shares]
        assert sorted(sid for o in owners for sid in o) == sorted(targets), "each station exactly once"
        link_owner: dict[str, int] = {}
        for index, share in enumerate(shares):
            for target in share.values():
                for device in target.devices:
                    assert link_owner.setdefault(link_key(device), index) == index, link_key(device)
        if count > 1:
            assert all(owners), f"{count} processes: every process polls some of 37 gateways"


def test_the_share_does_not_depend_on_order_or_on_unrelated_stations() -> None:
    targets = {f"S{i}": _station(f"S{i}", (f"10.1.{i}.1", 502)) for i in range(40)}
    reversed_targets = dict(reversed(list(targets.items())))
    assert share_of(targets, 1, 3) == share_of(reversed_targets, 1, 3)
    more = {**targets, "NEW": _station("NEW", ("10.9.9.9", 502))}
    assert {k: v for k, v in share_of(more, 1, 3).items() if k != "NEW"} == share_of(targets, 1, 3)
    # CRC-32, not the salted hash(): a fixed value
    assert process_of("10.1.0.1:502", 7) == 3  # zlib.crc32(b"10.1.0.1:502") % 7


def test_link_groups_join_stations_through_shared_links() -> None:
    targets = {"A": _station("A", ("h1", 1)), "B": _station("B", ("h1", 1), ("h2", 2)), "C": _station("C", ("h2", 2)),
               "D": _station("D", ("h3", 3))}
    groups = link_groups(targets)
    assert groups["A"] == groups["B"] == groups["C"] == "h1:1"
    assert groups["D"] == "h3:3"


def test_the_bundled_stations_on_their_own_gateways_are_split_between_two_processes() -> None:
    from dataclasses import replace

    from sensors.modbus.supervisor import poll_targets

    stations = [replace(s, devices=tuple(replace(d, port=15000 + i) for d in s.devices))
                for i, s in enumerate(bundled_network()) if s.kind == "station"]  # as `aqnet up` runs them
    targets = poll_targets(stations, lambda _: 10.0)
    assert len(targets) == 19
    sizes = [len(share_of(targets, i, 2)) for i in range(2)]
    assert sum(sizes) == 19 and min(sizes) > 0, sizes


@pytest.mark.parametrize(("index", "count"), [(-1, 2), (2, 2), (0, 0)])
def test_a_process_outside_the_count_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="process"):
        share_of({}, index, count)
    with pytest.raises(ValueError, match="process index"):
        Role(index, count)


# ------------------------------------------------------------------------------------------------------ role

def test_a_single_process_keeps_its_topics_client_id_and_spool() -> None:
    role = Role()
    assert role.primary and role.name == "main"
    assert role.topics(["aqnet/+/readings"], "aqnet") == ["aqnet/+/readings"]
    assert role.client_id("aqnet-ingest") == "aqnet-ingest"
    assert role.spool_dir("var/spool") == Path("var/spool")
    assert role.spool_max_bytes(1000) == 1000


def test_several_processes_share_subscriptions_and_split_the_spool_bound() -> None:
    topics = ["aqnet/+/readings", "$share/mine/airrohr/+/data"]
    main, worker = Role(0, 3), Role(2, 3)
    assert main.topics(topics, "grp") == ["$share/grp/aqnet/+/readings", "$share/mine/airrohr/+/data"]
    assert worker.topics(topics, "grp") == main.topics(topics, "grp")
    assert (main.client_id("aqnet-ingest"), worker.client_id("aqnet-ingest")) == ("aqnet-ingest", "aqnet-ingest-2")
    assert worker.name == "intake-2" and not worker.primary
    assert worker.spool_dir("var/spool") == Path("var/spool/process-2")
    assert sum(Role(i, 3).spool_max_bytes(1000) for i in range(3)) <= 1000


# ----------------------------------------------------------------------------------------------- metrics merge

def _registry(readings: float, connected: float) -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("aqnet_ingest_readings_total", "readings", ["protocol"], registry=r).labels("mqtt").inc(readings)
    Gauge("aqnet_mqtt_connected", "connected", registry=r).set_function(lambda: connected)
    Histogram("aqnet_storage_batch_write_seconds", "write", registry=r).observe(0.2)
    return r


def test_one_metrics_page_keeps_every_process_sample_under_a_process_label() -> None:
    main, worker = _registry(5, 1), _registry(7, 0)
    combined = CollectorRegistry(auto_describe=False)
    combined.register(ProcessesCollector(main, "main", lambda: {"intake-1": list(worker.collect())}))
    text = generate_latest(combined).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}  # parses: no name exposed twice
    readings = {s.labels["process"]: s.value for s in families["aqnet_ingest_readings"].samples
                if s.name.endswith("_total")}
    assert readings == {"main": 5.0, "intake-1": 7.0}
    connected = {s.labels["process"]: s.value for s in families["aqnet_mqtt_connected"].samples}
    assert connected == {"main": 1.0, "intake-1": 0.0}  # a set_function gauge of each process survives
    counts = {s.labels["process"]: s.value for s in families["aqnet_storage_batch_write_seconds"].samples
              if s.name.endswith("_count")}
    assert counts == {"main": 1.0, "intake-1": 1.0}
    assert text.count("# TYPE aqnet_ingest_readings_total counter") == 1


def test_a_family_of_another_type_under_the_same_name_is_left_out() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Gauge("x", "g", registry=a).set(1)
    Counter("x", "c", registry=b).inc()
    merged = merge_processes({"main": list(a.collect()), "intake-1": list(b.collect())})
    assert [(m.name, m.type, [s.labels for s in m.samples]) for m in merged] == [("x", "gauge", [{"process": "main"}])]


# ------------------------------------------------------------------------------------------ conditions exchange

def test_the_exchange_passes_on_the_newest_observation_per_sensor_and_records_others() -> None:
    book = ConditionsBook(bundled_network())
    exchange = ConditionsExchange(lambda: book)
    book.on_observe = exchange.observed
    exchange.observed("temperature", "MS01", T0, 10.0)
    exchange.observed("temperature", "MS01", T0 - timedelta(minutes=1), 99.0)  # older: ignored
    exchange.observed("temperature", "MS01", T0 + timedelta(minutes=1), 11.0)
    exchange.observed("pressure", "MS01", T0, 750.0)
    assert sorted(exchange.take()) == [("pressure", "MS01", T0, 750.0),
                                       ("temperature", "MS01", T0 + timedelta(minutes=1), 11.0)]
    assert exchange.take() == []
    other = ConditionsBook(bundled_network())
    ConditionsExchange(lambda: other).apply([("temperature", "MS02", T0, 8.5), ("pressure", "MS02", T0, 751.0),
                                             ("wind_speed", "MS02", T0, 3.0)])  # not a condition: ignored
    site = other.for_sensor("MS02", T0 + timedelta(minutes=5))
    assert (site.temp_c, site.pressure_hpa, site.source) == (8.5, 751.0, "own")


def test_a_recorded_observation_is_not_passed_on_again_and_survives_a_new_network() -> None:
    book = ConditionsBook(bundled_network())
    seen: list[object] = []
    book.on_observe = lambda *obs: seen.append(obs)
    book.record("temperature", "MS03", T0, 12.0)
    assert seen == []  # an echo would bounce between processes forever
    moved = book.with_network(bundled_network())
    assert moved.on_observe is book.on_observe
    assert moved.for_sensor("MS03", T0).temp_c == 12.0


# ---------------------------------------------------------------------------------------------------- frames

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=5), st.integers(), st.floats(allow_nan=False)), max_size=20))
def test_frames_round_trip_through_a_stream(payload: list[tuple[str, int, float]]) -> None:
    async def go() -> tuple[object, ...] | None:
        reader = asyncio.StreamReader()
        reader.feed_data(encode_frame(("observe", payload)) + encode_frame(("scrape", 3))[:3])
        reader.feed_eof()
        channel = Channel(reader, None)
        first = await channel.receive()
        assert await channel.receive() is None  # a cut frame at the end: the other end is gone
        return first

    assert asyncio.run(go()) == ("observe", payload)


def test_an_oversized_frame_is_refused_before_it_is_read() -> None:
    with pytest.raises(FrameError, match="more than"):
        decode_length((MAX_FRAME + 1).to_bytes(4, "big"))


def test_process_0_liveness_names_what_fails_in_another_process() -> None:
    from typing import cast

    from aqnet.config import Settings
    from aqnet.daemon.workers import IntakeProcesses

    # nothing is started: the settings are only handed to the processes when they start
    workers = IntakeProcesses(cast("Settings", None), 3, ConditionsExchange(lambda: ConditionsBook(())), log_level=20)
    workers.statuses = {
        "intake-1": {"health": {"status": "fail", "reasons": {"stage pipeline": "no progress for 300 s"}}},
        "intake-2": {"health": {"status": "ok", "reasons": {}}},
    }
    assert workers.down() == {"intake-1": "stage pipeline: no progress for 300 s"}
    workers.statuses = {"intake-1": "down", "intake-2": {"health": {"status": "ok", "reasons": {}}}}
    assert workers.down() == {}  # not running: a down task of process 0 already says so
