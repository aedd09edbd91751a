"""`make bench`'s closing table (`bench.summary`): each goal of issue 19 judged from synthetic results, and the table
and JSON they make. No benchmark runs here and no timing is asserted: the figures are made up."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from bench import summary
from bench.averages import TickResult
from bench.ingest import IngestBench, Phase
from bench.modbus import BaselineResult, ModbusBench, PollingResult
from bench.spy import summarise


def _ingest(*, aqnet_per_s: float = 30_000.0, ceiling_per_s: float = 50_000.0, copy_per_s: float = 24_000.0,
            naive_per_s: float = 1_600.0, p99_s: float = 0.5, achieved: float = 8_000.0,
            daemon_cpu_s: float = 15.0) -> IngestBench:
    wall = 10.0
    aqnet = Phase("aqnet", round(aqnet_per_s * wall), round(aqnet_per_s * wall), wall,
                  cpu_s={"consumer": daemon_cpu_s, "postgres": 6.0, "mosquitto": 1.0, "publishers": 2.0},
                  processes=((100, "python -m aqnet run", daemon_cpu_s * 0.6),
                             (101, "python -m aqnet intake-worker", daemon_cpu_s * 0.4)))
    latencies = tuple([0.1] * 98 + [p99_s, p99_s])
    paced = Phase("aqnet paced", 8_000, 8_000, 1.0, latencies, offered_per_s=8_000.0, achieved_per_s=achieved)
    return IngestBench(aqnet, paced, Phase("ceiling", round(ceiling_per_s), round(ceiling_per_s), 1.0),
                       Phase("copy", round(copy_per_s), round(copy_per_s), 1.0),
                       Phase("naive", round(naive_per_s), round(naive_per_s), 1.0), {},
                       {"aqnet_storage_batch_write_seconds_sum": 4.0, "queue_length_max": 800.0})


def _modbus(*, request_ratio: float = 0.7, missed: int = 0) -> ModbusBench:
    # raw: 1,000 reads per CPU s; aqnet: 2 requests per poll, polls at request_ratio / 2 of that per CPU s
    base = BaselineResult(clients=19, count=40, reads=10_000, wall_s=5.0, cpu_s=10.0)
    polls = 1_000
    cpu = polls * 2 / (request_ratio * 1_000)
    poll = PollingResult(stations=190, devices=100, links=19, interval_s=10.0, ticks=6, expected=600,
                         done=600 - missed, gaps=0, polls=polls, requests=2 * polls, cpu_s=cpu,
                         intervals_s=(10.0,), delays_s=(0.1,))
    return ModbusBench(base, poll)


def _row(rows: list[summary.Row], start: str) -> summary.Row:
    return next(r for r in rows if r.figure.startswith(start))


@given(st.floats(0.05, 2.0), st.floats(0.05, 3.0))
def test_the_rate_goal_needs_half_the_ceiling_and_the_hand_written_subscribers_rate(of_ceiling: float,
                                                                                     of_copy: float) -> None:
    aqnet = 10_000.0
    rows = summary.ingest_rows(_ingest(aqnet_per_s=aqnet, ceiling_per_s=aqnet / of_ceiling,
                                       copy_per_s=aqnet / of_copy))
    rate = _row(rows, "MQTT → TimescaleDB")
    r = _ingest(aqnet_per_s=aqnet, ceiling_per_s=aqnet / of_ceiling, copy_per_s=aqnet / of_copy)
    assert rate.met is (r.of_ceiling >= 0.5 and r.of_copy >= 1.0)


def test_the_naive_ratio_is_printed_but_not_judged() -> None:
    slow_naive = summary.ingest_rows(_ingest(naive_per_s=29_000.0))  # only ~1× naive
    rate = _row(slow_naive, "MQTT → TimescaleDB")
    assert rate.met is True
    assert "1.0× naive" in rate.aqnet
    assert "naive INSERT 29,000" in rate.baseline
    assert _row(summary.ingest_rows(_ingest(copy_per_s=31_000.0)), "MQTT").met is False  # below the subscriber


def test_latency_goal_is_p99_under_a_second_and_not_judged_when_the_load_fell_short() -> None:
    assert _row(summary.ingest_rows(_ingest(p99_s=0.9)), "publish→commit").met is True
    missed = _row(summary.ingest_rows(_ingest(p99_s=1.25)), "publish→commit")
    assert missed.met is False
    assert "p99 1,250 ms" in missed.aqnet
    assert missed.figure == "publish→commit at 8,000 readings/s offered (10,000-sensor rate)"
    short = _row(summary.ingest_rows(_ingest(p99_s=0.2, achieved=7_000.0)), "publish→commit")
    assert short.met is None
    assert "SHORT of the asked rate" in short.aqnet


def test_both_cores_goal_is_more_than_one_cpu_second_per_wall_second_over_every_daemon_process() -> None:
    busy = _row(summary.ingest_rows(_ingest(daemon_cpu_s=15.0)), "where the time goes")
    assert busy.met is True
    assert "daemon 1.50 CPU s per wall s over 2 processes" in busy.aqnet
    assert "writer busy 40%" in busy.aqnet
    assert busy.values["daemon_cores"] == 1.5
    assert _row(summary.ingest_rows(_ingest(daemon_cpu_s=10.0)), "where the time goes").met is False  # 1.0: one core


def test_modbus_goal_needs_the_ratio_and_no_missed_poll() -> None:
    assert summary.modbus_row(_modbus(request_ratio=0.7)).met is True
    assert summary.modbus_row(_modbus(request_ratio=0.5)).met is False
    missed = summary.modbus_row(_modbus(request_ratio=0.9, missed=1))
    assert missed.met is False
    assert missed.aqnet.startswith("1 missed polls of 600; requests at 0.90× the raw rate per CPU second")
    assert missed.figure == "Modbus, 190 stations every 10 s"


def test_scheduler_goal_is_judged_at_10000_sensors_only() -> None:
    def tick(n: int, s: float, base: float) -> TickResult:
        return TickResult(n, s, {"1h": n}, base, n)
    assert summary.averages_row([tick(100, 0.1, 0.01), tick(10_000, 1.5, 0.8)]).met is True
    assert summary.averages_row([tick(10_000, 1.9, 0.5)]).met is False  # < 2 s but 3.8× the baseline
    assert summary.averages_row([tick(10_000, 2.5, 2.0)]).met is False  # ≤ 2× but not < 2 s
    small = summary.averages_row([tick(100, 0.1, 0.01), tick(1_000, 0.5, 0.4)])
    assert small.met is None
    assert small.figure == "scheduler tick, 1,000 sensors"


def test_table_has_one_line_per_row_with_its_verdict_and_counts_the_misses() -> None:
    rows = [*summary.ingest_rows(_ingest(p99_s=2.0)), summary.modbus_row(_modbus()),
            summary.averages_row([TickResult(1_000, 0.5, {}, 0.4, 1)])]
    lines = summary.table(rows)
    assert lines[0] == "| figure | aqnet | baseline, same run | goal | met |"
    assert len(lines) == 2 + len(rows) + 1
    assert all(line.count(" | ") == 4 for line in lines[2:-1])  # no cell broke the table
    assert lines[2].endswith("| met |")
    assert lines[3].endswith("| **MISSED** |")
    assert lines[-2].endswith("| not measured |")
    assert lines[-1] == ("goals met: 3 of 5; missed: publish→commit at 8,000 readings/s offered (10,000-sensor rate); "
                         "not measured: 1")
    assert "—" in lines[3]  # the latency row has no baseline


def test_json_is_valid_and_nan_becomes_null() -> None:
    row = summary.Row("f", "a", "b", "g", None, {"x": math.nan, "y": 1.5})
    doc = json.loads(json.dumps(summary.to_json([row], cpus=2)))
    assert doc == {"cpus": 2, "rows": [{"figure": "f", "aqnet": "a", "baseline": "b", "goal": "g", "met": None,
                                        "values": {"x": None, "y": 1.5}}]}


def test_py_spy_summary_is_per_process_and_thread_with_active_shares() -> None:
    main = 'process 10:"python -m aqnet run";'
    raw = "\n".join([
        (f"{main}thread (11): MainThread;run (aqnet/cli.py:3);normalise (ingest/normalise.py:80);"
        "<genexpr> (ingest/units.py:9) 60"),
        f"{main}thread (11): MainThread;run (aqnet/cli.py:3);select (selectors.py:468) 20",
        f"{main}thread (12): writer;write (storage/writer.py:140) 50",
        f'{main}process 13:"python -m aqnet intake";thread (13): MainThread;loads (json/__init__.py:346) 100',
    ])
    lines = summarise(raw, rate=100, wall_s=2.0)
    assert lines[0] == "  pid 10 python -m aqnet run: threads active 65% of the wall (summed)"
    assert "    thread MainThread (11): active 40% of the wall, waiting 25%" in lines
    assert "      self  75.0%  <genexpr> (ingest/units.py:9)" in lines
    assert "      under 75.0%  normalise (ingest/normalise.py:80)  (innermost aqnet caller)" in lines
    assert "  pid 13 python -m aqnet intake: threads active 50% of the wall (summed)" in lines
    assert not any("select (selectors.py" in line for line in lines)


def test_missing_rows_miss_the_goal_whatever_the_rate() -> None:
    r = _ingest(aqnet_per_s=40_000.0)
    lossy = IngestBench(Phase("aqnet", r.aqnet.rows - 5, r.aqnet.expected, r.aqnet.wall_s, cpu_s=r.aqnet.cpu_s),
                        Phase("paced", 7_000, 8_000, 1.0, (0.1,), offered_per_s=8_000.0, achieved_per_s=8_000.0),
                        r.ceiling, r.copy, r.naive, r.settings, r.metrics)
    rows = summary.ingest_rows(lossy)
    assert rows[0].met is False
    assert rows[0].aqnet.endswith("(5 rows MISSING)")
    assert rows[1].met is False
    assert "1,000 rows MISSING" in rows[1].aqnet
