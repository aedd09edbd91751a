"""The soak's samples and verdicts (`bench.soak`): the RSS band after warm-up, the latency verdict, the table (CSV
and markdown) and the plot (PNG, matplotlib's Agg backend) of readings/s, publish → commit p99 and RSS over time.
Pure, except `write_csv`, `write_markdown` and `plot`, which write the files they are named after.

Definitions:
- warm-up: the first `WARMUP_SHARE` (1/6) of the run (5 min of 30): the daemon's caches, pools and the
  allocator settle in it; nothing in it is judged.
- RSS band: every sample after warm-up lies within ±`RSS_TOLERANCE` (10 %) of the median of those samples
  (a leak shows as a drift that leaves the band; a level that merely differs from the warm-up's does not).
- latency: the p99 of publish → commit over every synthetic message after warm-up (computed by the database);
  goal < 1 s, as `make bench`'s (issue 19).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RSS_TOLERANCE", "WARMUP_SHARE", "RssBand", "Sample", "SoakResult", "markdown", "plot", "rss_band",
           "verdict_lines", "warmup_s", "write_csv", "write_markdown"]

WARMUP_SHARE = 1 / 6  #: share of the run before anything is judged
RSS_TOLERANCE = 0.10  #: ± share of the post-warm-up median RSS every later sample must stay within
GOAL_P99_S = 1.0  #: publish → commit p99 at the 10,000-sensor rate (issue 19)


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampling interval, ending `t_s` seconds after the load started."""

    t_s: float
    readings_per_s: float  #: rows committed per second over the interval (the daemon's counter)
    rss_mib: float  #: the daemon's resident set size, its child processes included, at the sample
    cores: float  #: the daemon's CPU seconds per wall second over the interval (all its processes)
    p50_s: float = math.nan  #: publish → commit of the synthetic messages published in the interval
    p99_s: float = math.nan
    messages: int = 0  #: synthetic messages published in the interval the quantiles are over


@dataclass(frozen=True, slots=True)
class RssBand:
    """RSS after warm-up against its median."""

    reference_mib: float  #: median RSS after warm-up
    low_mib: float
    high_mib: float
    samples: int  #: samples after warm-up

    @property
    def ok(self) -> bool:
        """Every sample after warm-up within ±tolerance of the reference (False with no such sample)."""
        return self.samples > 0 and self.reference_mib * (1 - RSS_TOLERANCE) <= self.low_mib and \
            self.high_mib <= self.reference_mib * (1 + RSS_TOLERANCE)


@dataclass(frozen=True, slots=True)
class SoakResult:
    """A whole soak: its samples, settings and the overall figures after warm-up."""

    samples: tuple[Sample, ...]
    duration_s: float  #: the load's length
    rate: float  #: readings/s asked of the synthetic load
    offered_per_s: float  #: readings/s the publishers did offer
    p50_s: float  #: over every synthetic message after warm-up
    p99_s: float
    settings: dict[str, str]

    @property
    def warmup_s(self) -> float:
        """End of the warm-up, s after the load started."""
        return warmup_s(self.duration_s)

    @property
    def band(self) -> RssBand:
        """The RSS band after warm-up."""
        return rss_band(self.samples, self.warmup_s)


def warmup_s(duration_s: float) -> float:
    """The warm-up's length for a run of `duration_s`: its first sixth."""
    return duration_s * WARMUP_SHARE


def rss_band(samples: Sequence[Sample], warmup: float) -> RssBand:
    """The band of the samples taken after `warmup` s (an interval ending at the warm-up is part of it); NaN
    figures and 0 samples when there is none."""
    after = [s.rss_mib for s in samples if s.t_s > warmup and not math.isnan(s.rss_mib)]
    if not after:
        return RssBand(math.nan, math.nan, math.nan, 0)
    return RssBand(statistics.median(after), min(after), max(after), len(after))


def verdict_lines(r: SoakResult) -> list[str]:
    """What the soak prints at the end: readings/s, the RSS band and the p99 after warm-up, each with its goal."""
    b = r.band
    after = [s for s in r.samples if s.t_s > r.warmup_s]
    mean_rate = statistics.fmean(s.readings_per_s for s in after) if after else math.nan
    mean_cores = statistics.fmean(s.cores for s in after) if after else math.nan
    rss = ("met" if b.ok else "MISSED") if b.samples else "not measured"
    p99 = "not measured" if math.isnan(r.p99_s) else ("met" if r.p99_s < GOAL_P99_S else "MISSED")
    return [
        (f"load          {r.rate:,.0f} readings/s asked, {r.offered_per_s:,.0f} offered by the publishers, "
         f"{r.duration_s / 60:.1f} min; warm-up the first {r.warmup_s / 60:.1f} min"),
        (f"after warm-up {mean_rate:,.0f} readings/s committed on average (simulated network included); daemon "
         f"{mean_cores:.2f} CPU s per wall s"),
        (f"RSS           median {b.reference_mib:,.0f} MiB, range {b.low_mib:,.0f}–{b.high_mib:,.0f} MiB over "
         f"{b.samples} samples: within ±{RSS_TOLERANCE:.0%} after warm-up: {rss}"),
        (f"latency       publish→commit after warm-up p50 {r.p50_s * 1e3:,.0f} ms, p99 {r.p99_s * 1e3:,.0f} ms "
         f"(goal p99 < {GOAL_P99_S:g} s): {p99}"),
    ]


_COLUMNS = ("t_s", "readings_per_s", "p50_ms", "p99_ms", "messages", "rss_mib", "daemon_cores")


def _row(s: Sample) -> tuple[str, ...]:
    def f(v: float, fmt: str) -> str:
        return "" if math.isnan(v) else format(v, fmt)
    return (f(s.t_s, ".1f"), f(s.readings_per_s, ".0f"), f(s.p50_s * 1e3, ".0f"), f(s.p99_s * 1e3, ".0f"),
            str(s.messages), f(s.rss_mib, ".1f"), f(s.cores, ".2f"))


def write_csv(r: SoakResult, path: Path) -> None:
    """The samples as CSV, one row per interval (empty cells where a figure is unknown)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(_COLUMNS)
        w.writerows(_row(s) for s in r.samples)


def markdown(r: SoakResult) -> list[str]:
    """The soak as markdown: settings, the verdicts and the samples' table."""
    lines = ["# aqnet soak", "", *[f"- {k}: {v}" for k, v in r.settings.items()], "",
             *[f"    {line}" for line in verdict_lines(r)], "",
             "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(c or "—" for c in _row(s)) + " |" for s in r.samples]
    return lines


def write_markdown(r: SoakResult, path: Path) -> None:
    """`markdown(r)` into `path`."""
    path.write_text("\n".join(markdown(r)) + "\n", encoding="utf-8")


def plot(r: SoakResult, path: Path) -> None:
    """Readings/s, publish → commit p99 and RSS over time, three panels sharing the time axis, into a PNG."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in r.samples]
    fig, (a, b, c) = plt.subplots(3, 1, sharex=True, figsize=(9, 8), constrained_layout=True)
    a.plot(minutes, [s.readings_per_s for s in r.samples], color="tab:blue")
    a.axhline(r.rate, color="grey", linestyle=":", label=f"synthetic load asked ({r.rate:,.0f}/s)")
    a.set_ylabel("readings/s committed")
    a.legend(loc="lower right")
    b.plot(minutes, [s.p99_s * 1e3 for s in r.samples], color="tab:red", label="p99")
    b.plot(minutes, [s.p50_s * 1e3 for s in r.samples], color="tab:orange", label="p50")
    b.axhline(GOAL_P99_S * 1e3, color="grey", linestyle=":", label="goal p99 < 1 s")
    b.set_ylabel("publish→commit, ms")
    b.legend(loc="upper right")
    c.plot(minutes, [s.rss_mib for s in r.samples], color="tab:green")
    band = r.band
    if band.samples:
        c.axhspan(band.reference_mib * (1 - RSS_TOLERANCE), band.reference_mib * (1 + RSS_TOLERANCE),
                  xmin=0, xmax=1, color="tab:green", alpha=0.1, label=f"±{RSS_TOLERANCE:.0%} of the median")
        c.legend(loc="lower right")
    c.set_ylabel("daemon RSS, MiB")
    c.set_xlabel("minutes since the load started")
    for ax in (a, b, c):
        ax.axvline(r.warmup_s / 60, color="black", linewidth=0.8, linestyle="--")
        ax.grid(alpha=0.3)
    a.set_title("aqnet soak (dashed: end of warm-up)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
