"""`make bench`'s averages + indices benchmark: one tiny run end to end, and its report.

No timing is asserted (the figures depend on the machine); the rows written are, since they follow from the
workload (one tick at a day boundary: 1h, 8h, 24h and day per sensor, NowCast US AQI + IBOCA, daily AQI).
"""

from __future__ import annotations

import math

import pytest

from bench import averages


def test_report_shows_the_ratio_and_the_goal_only_at_ten_thousand() -> None:
    small = averages.TickResult(100, 0.5, {"1h": 100, "year": 0}, 0.25, 100)
    big = averages.TickResult(10_000, 3.0, {"1h": 10_000}, 1.5, 10_000)
    lines = averages.report([small, big])
    assert "2.0x the baseline's time" in lines[1] and "goal" not in lines[1]
    assert "rows written: 1h 100" in lines[2] and "year" not in lines[2]
    assert "goal < 2 s: MISSED; goal <= 2x the baseline: met" in lines[3]
    fast = averages.report([averages.TickResult(10_000, 1.5, {"1h": 10_000}, 0.5, 10_000)])
    assert "goal < 2 s: met; goal <= 2x the baseline: MISSED" in fast[1]
    assert math.isnan(averages.TickResult(1, 1.0, {}, 0.0, 0).ratio)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(SystemExit, match="--sensors"):
        averages.main(["--sensors", "0"])


@pytest.mark.integration
def test_averages_bench_runs_one_tick_for_three_sensors(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = averages.main(["--sensors", "3"])
    printed = capsys.readouterr().out
    assert result.sensors == 3 and result.baseline_rows == 3
    assert result.rows == {"1h": 3, "8h": 3, "24h": 3, "day": 3, "year": 0, "nowcast": 6, "daily_aqi": 3}
    assert result.tick_s > 0 and result.baseline_s > 0
    assert "3 sensors: aqnet" in printed
