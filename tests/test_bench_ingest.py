"""`make bench`'s end-to-end ingest benchmark: its workload, instruments and report, and one tiny run end to end.

No timing is asserted (the figures depend on the machine); counts are, since they follow from the workload.
"""

from __future__ import annotations

import math
import multiprocessing.resource_tracker
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import ingest, ingest_daemon
from bench.__main__ import main as bench_main
from bench.ingest_peers import SENSORS, VALUES, WIDE, Publishers, payload, reading_time, sensor_of
from bench.ingest_probes import hottest

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def test_every_message_has_its_own_reading_time_and_the_four_microsensor_values() -> None:
    times = {reading_time(T0, i) for i in range(10_000)}
    assert len(times) == 10_000
    doc = __import__("json").loads(payload(T0, 26))
    assert set(doc["values"]) == set(VALUES)
    assert datetime.fromisoformat(doc["time"]) == reading_time(T0, 26)
    assert sensor_of(0) == sensor_of(len(SENSORS)) == "MS01" and sensor_of(1) == "MS02"


def test_the_10000_sensor_rate_is_8000_readings_per_s_in_eight_value_messages() -> None:
    assert ingest.SENSOR_RATE == 8_000  # 10,000 sensors × 8 values every 10 s (issue 19)
    assert len(WIDE) == len(set(WIDE)) == 8
    assert set(VALUES) <= set(WIDE)
    doc = __import__("json").loads(payload(T0, 7, WIDE))
    assert list(doc["values"]) == list(WIDE)
    assert all(isinstance(v, float) for v in doc["values"].values())


def test_publishers_split_messages_so_one_publisher_owns_each_sensor() -> None:
    slices = Publishers.partition(3, range(1000))
    assert sorted(i for part in slices for i in part) == list(range(1000))
    owners = {sensor_of(i): p for p, part in enumerate(slices) for i in part}
    for p, part in enumerate(slices):
        assert all(owners[sensor_of(i)] == p for i in part)
        assert part == sorted(part)  # each sensor's messages in publish order


def test_latency_quantiles_are_nearest_rank_and_skip_never_committed_messages() -> None:
    phase = ingest.Phase("x", rows=4, expected=4, wall_s=2.0, latencies_s=(0.3, math.nan, 0.1, 0.2, 0.4))
    assert phase.per_s == 2.0
    assert phase.latency_s(0.5) == 0.2
    assert phase.latency_s(0.99) == 0.4
    assert math.isnan(ingest.Phase("y", 0, 0, 1.0).latency_s(0.5))


def test_profile_summary_leaves_waiting_out_and_shows_aqnet_functions(tmp_path: Path) -> None:
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "main (aqnet/cli.py:10);run (ingest/pipeline.py:115);write (storage/writer.py:140) 30\n"
        "main (aqnet/cli.py:10);handle (sensors/mqtt/subscriber.py:105);loads (json/__init__.py:346) 10\n"
        "main (aqnet/cli.py:10);_run_once (asyncio/base_events.py:1909);select (selectors.py:468) 60\n")
    lines = hottest("py-spy", raw)
    assert "waiting for I/O: 60% of the samples" in lines[0]
    assert any(" 75.0%  write (storage/writer.py:140)" in line for line in lines)
    assert any("incl  25.0%  handle (sensors/mqtt/subscriber.py:105)" in line for line in lines)
    assert not any("select (selectors.py" in line for line in lines[1:])


def test_profile_switch_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AQNET_BENCH_PROFILE", raising=False)
    assert ingest_daemon.profiler_for("auto", short=False) is None
    assert ingest_daemon.profiler_for("auto", short=True) in ("py-spy", "cprofile")
    assert ingest_daemon.profiler_for("never", short=True) is None
    monkeypatch.setenv("AQNET_BENCH_PROFILE", "1")
    assert ingest_daemon.profiler_for("never", short=False) in ("py-spy", "cprofile")
    monkeypatch.setenv("AQNET_BENCH_PROFILE", "0")
    assert ingest_daemon.profiler_for("always", short=True) is None


def test_too_small_a_workload_is_refused() -> None:
    with pytest.raises(SystemExit, match="readings and naive readings >= 100"):
        ingest.main(["--readings", "10"])


@pytest.fixture(scope="module")
def _resource_tracker() -> None:
    """Spawned processes share one multiprocessing resource tracker that lives as long as pytest: start it
    before the leaked-process guard takes its census."""
    multiprocessing.resource_tracker.ensure_running()


@pytest.mark.integration
@pytest.mark.usefixtures("_resource_tracker")
def test_tiny_run_prints_every_figure_and_stores_every_reading(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AQNET_BENCH_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)  # the bench's daemons keep their alert keys in ./var: this test's, not the checkout's
    bench_main(["ingest-e2e", "--readings", "400", "--naive-readings", "200", "--publishers", "2",
                "--latency-s", "1", "--profile", "always"])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("ingest end to end")
    for label, unit in [("aqnet settings", "mqtt.receive_maximum 1000"), ("workload", "100 aqnet JSON messages"),
                        ("ceiling (psql \\copy)", "readings/s"), ("copy subscriber", "readings/s"),
                        ("naive peer (INSERT each)", "readings/s"), ("aqnet ", "readings/s"),
                        ("aqnet publish→commit", "p99"), ("ratios", "aqnet/naive"), ("CPU during aqnet", "daemon"),
                        ("aqnet writer", "batches"), ("where aqnet's time goes", "of a separate run"),
                        ("| publish→commit at 8,000 readings/s offered", "p99"), ("goals met:", "of 3")]:
        assert any(line.startswith(label) and unit in line for line in lines), (label, printed)
    assert "MISSING" not in printed  # every published reading was stored, by every consumer
    assert "(400 rows in" in printed and "(200 rows in" in printed
    assert "asked 8,000 readings/s, publishers offered" in printed and "8,000 readings, " in printed
    assert "nan" not in printed.split("where aqnet's time goes")[0]
