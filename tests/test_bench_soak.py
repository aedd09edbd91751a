"""`make soak` (`bench.soak`, `bench.soak_report`): warm-up and the RSS band judged from synthetic samples, the
files a soak writes, and one short soak end to end (integration: it starts TimescaleDB, Mosquitto, the simulated
network and the daemon). No timing is asserted."""

from __future__ import annotations

import csv
import math
import multiprocessing.resource_tracker
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import soak_report as sr
from bench.__main__ import main as bench_main


def _samples(rss: list[float], step: float = 10.0) -> tuple[sr.Sample, ...]:
    return tuple(sr.Sample((k + 1) * step, 8_000.0, m, 1.2, 0.3, 0.8, 100) for k, m in enumerate(rss))


def _result(rss: list[float], *, p99: float = 0.8, step: float = 10.0) -> sr.SoakResult:
    return sr.SoakResult(_samples(rss, step), len(rss) * step, 8_000.0, 7_990.0, 0.3, p99, {"rate": "8,000"})


def test_warm_up_is_the_first_sixth_of_the_run() -> None:
    assert sr.warmup_s(1_800) == 300  # 5 min of a 30-min soak
    assert sr.warmup_s(18) == 3
    assert _result([100.0] * 12).warmup_s == 20


def test_rss_band_ignores_the_warm_up_and_is_judged_against_the_median_after_it() -> None:
    # a climb during warm-up (first 20 s of 120 s) does not count; then steady within ±10 % of 200
    band = sr.rss_band(_samples([50.0, 120.0, 190.0, 200.0, 205.0, 198.0, 210.0, 200.0, 195.0, 202.0, 200.0, 201.0]),
                       20.0)
    assert band.samples == 10
    assert band.reference_mib == 200.0
    assert (band.low_mib, band.high_mib) == (190.0, 210.0)
    assert band.ok


def test_a_leak_leaves_the_band() -> None:
    leak = _result([100.0 + 5 * k for k in range(12)])  # +5 MiB every sample: 110 → 155 after warm-up
    assert not leak.band.ok
    assert any("within ±10% after warm-up: MISSED" in line for line in sr.verdict_lines(leak))


@given(st.floats(50, 5_000), st.lists(st.floats(-0.099, 0.099), min_size=1, max_size=40))
def test_samples_within_ten_percent_of_their_median_pass(level: float, wiggles: list[float]) -> None:
    rss = [level * (1 + w) for w in wiggles]
    band = sr.rss_band(_samples(rss), 0.0)
    assert band.ok is all(abs(m / band.reference_mib - 1) <= sr.RSS_TOLERANCE for m in rss)


def test_no_sample_after_warm_up_is_not_measured() -> None:
    band = sr.rss_band(_samples([100.0]), warmup=1e9)
    assert band.samples == 0 and math.isnan(band.reference_mib) and not band.ok
    # one sample, at t = 10 s, the end of a 60-s run's warm-up: nothing after it is judged
    lines = sr.verdict_lines(sr.SoakResult(_samples([100.0]), 60.0, 800.0, 800.0, math.nan, math.nan, {}))
    assert lines[2].endswith("over 0 samples: within ±10% after warm-up: not measured")
    assert lines[-1].endswith("(goal p99 < 1 s): not measured")


def test_latency_verdict_is_p99_under_a_second() -> None:
    assert sr.verdict_lines(_result([100.0] * 12, p99=0.8))[-1].endswith("p99 800 ms (goal p99 < 1 s): met")
    assert sr.verdict_lines(_result([100.0] * 12, p99=1.2))[-1].endswith("(goal p99 < 1 s): MISSED")


def test_csv_and_markdown_have_a_row_per_sample_and_leave_unknown_figures_empty(tmp_path: Path) -> None:
    r = sr.SoakResult((*_samples([100.0, 101.0]), sr.Sample(30.0, 7_000.0, 102.0, 1.0)), 30.0, 8_000.0, 8_000.0,
                      0.3, 0.8, {"rate": "8,000"})
    sr.write_csv(r, tmp_path / "soak.csv")
    rows = list(csv.reader((tmp_path / "soak.csv").open(encoding="utf-8")))
    assert rows[0] == ["t_s", "readings_per_s", "p50_ms", "p99_ms", "messages", "rss_mib", "daemon_cores"]
    assert rows[1] == ["10.0", "8000", "300", "800", "100", "100.0", "1.20"]
    assert rows[3] == ["30.0", "7000", "", "", "0", "102.0", "1.00"]  # no latency known for that interval
    md = sr.markdown(r)
    assert md[0] == "# aqnet soak"
    assert md[-1] == "| 30.0 | 7000 | — | — | 0 | 102.0 | 1.00 |"
    assert sum(line.startswith("| ") for line in md) == 1 + 3  # header and one line per sample


@pytest.fixture(scope="module")
def _resource_tracker() -> None:
    """Spawned publisher processes share one multiprocessing resource tracker that lives as long as pytest:
    start it before the leaked-process guard takes its census."""
    multiprocessing.resource_tracker.ensure_running()


@pytest.mark.integration
@pytest.mark.usefixtures("_resource_tracker")
def test_short_soak_writes_the_table_and_a_png_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "soak"
    bench_main(["soak", "--minutes", "0.3", "--rate", "400", "--load-sensors", "20", "--sample-s", "2",
                "--publishers", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    rows = list(csv.DictReader((out / "soak.csv").open(encoding="utf-8")))
    assert len(rows) >= 5  # 18 s sampled every 2 s
    assert all(float(r["rss_mib"]) > 0 for r in rows)
    assert any(r["p99_ms"] for r in rows)  # the synthetic messages' commit latency is known
    assert sum(int(r["messages"]) for r in rows) > 0
    png = (out / "soak.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    assert matplotlib.image.imread(str(out / "soak.png")).shape[:2] == (800, 900)
    assert "synthetic messages: 900 published, 900 stored" in (out / "soak.md").read_text(encoding="utf-8")
    for label in ("load ", "after warm-up", "RSS ", "latency ", "written "):
        assert any(line.startswith(label) for line in printed.splitlines()), (label, printed)
