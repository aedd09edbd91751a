"""`python -m bench [all|ingest|ingest-e2e|modbus|averages|sim-speed|soak]`: run aqnet's benchmarks (all by default),
print their figures, and close with issue 19's table: every figure with its same-run baseline, its goal and whether
it is met (`bench.summary`; `--json PATH` writes it as JSON too).

- ingest: the ingest hot path (decode an aqnet JSON message, normalise and QC its readings) against the bare
  `json.loads` of the same payloads, measured in the same run; prints messages/s and the ratio.
- ingest-e2e: microsensors → Mosquitto → the aqnet daemon → TimescaleDB against a psql \\copy ceiling, a
  hand-written batched-COPY subscriber and a naive INSERT-per-reading peer, measured in the same run; then
  publish → commit latency while offered exactly the 10,000-sensor rate (8,000 readings/s), and the CPU of every
  process of the daemon (`bench.ingest`); options `--readings`, `--publishers`, `--naive-readings`,
  `--latency-s`, `--rate`, `--profile`.
- modbus: Modbus polling of N simulated stations against the raw pymodbus read rate (`bench.modbus`); its
  options (`--stations`, `--interval`, `--duration`, `--baseline`, `--clients`) follow the benchmark's name.
- averages: one tick of the averages + indices job for N sensors (`--sensors`, default 100,1000,10000) against
  one SQL `GROUP BY time_bucket` computing the same windows, measured in the same run (`bench.averages`).
- sim-speed: the fastest `aqnet up --speed X` this machine sustains (`bench.sim_speed`; `--speeds`,
  `--sim-duration`, `--threshold`); not part of `all`.
- soak: the daemon under the simulated network plus synthetic load at `--rate` for `--minutes` (default 30),
  sampled every `--sample-s`; writes a CSV, a markdown table and a PNG plot into `--out` (`bench.soak`,
  `make soak`); not part of `all`.

Where a goal is missed (`--profile auto`, the default; `always` / `never`, or AQNET_BENCH_PROFILE=1/0), a separate
run of that benchmark goes under py-spy (`py-spy record --subprocesses --threads`, `bench.spy`) and where its time
goes is printed for every process and thread before the table. py-spy needs ptrace permission (root, or
`kernel.yama.ptrace_scope=0`); the table says so when it cannot attach.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import averages, modbus, profiles, sim_speed, soak, summary
from bench import ingest as ingest_e2e
from ingest.batch import BatchNormaliser, normalise_each
from ingest.calibration import CalibrationBook
from ingest.maintenance import MaintenanceBook
from ingest.normalise import ConditionsBook
from ingest.plausibility import TimeWindow
from sensors.mqtt.payloads.aqnet_json import decode_readings as decode
from sensors.network import bundled_network
from sensors.reading import RawReading

N = 20_000


def _payloads() -> list[tuple[str, bytes]]:
    out = []
    for i in range(N):
        sid = f"MS{i % 25 + 1:02d}"
        doc = {"time": f"2026-11-23T08:{i % 60:02d}:00-05:00",
               "values": {"pm25": 10 + i % 30, "pm10": 20 + i % 40, "temperature": 14.0, "relativehumidity": 70}}
        out.append((f"aqnet/{sid}/readings", json.dumps(doc).encode()))
    return out


def _best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def run_ingest() -> None:
    """Run the ingest benchmark and print its lines: the reading-by-reading (scalar) path and the batch path of
    `ingest.batch`, one message per call as the pipeline normalises a driver's submission, and 100 messages per
    call (numpy), all against `json.loads` in the same run."""
    payloads = _payloads()
    tz = ZoneInfo("America/Bogota")
    now = datetime(2026, 11, 23, 14, tzinfo=UTC)
    network = bundled_network()
    messages = [decode(topic, p, sensor_id=topic.split("/")[1], device_id=topic.split("/")[1], now=now, tz=tz)
                for topic, p in payloads]

    def baseline() -> None:
        for _, p in payloads:
            json.loads(p)

    def decoded() -> list[list[RawReading]]:
        return [decode(topic, p, sensor_id=topic.split("/")[1], device_id=topic.split("/")[1], now=now, tz=tz)
                for topic, p in payloads]

    def books() -> dict[str, Any]:
        return {"conditions": ConditionsBook(network), "qc": {}, "ranges": {}, "calibrations": CalibrationBook(),
                "maintenance": MaintenanceBook()}

    def scalar() -> None:
        kw = books()
        for raws in messages:
            normalise_each(raws, now, time_window=TimeWindow(), **kw)

    def per_message(normaliser: BatchNormaliser) -> Callable[[], None]:
        def run() -> None:
            kw = books()
            for raws in messages:
                normaliser(raws, now, **kw)
        return run

    def batched(size: int) -> Callable[[], None]:
        normaliser = BatchNormaliser(min_batch=0)
        raws = [r for m in messages for r in m]
        per = len(raws) // len(messages) * size

        def run() -> None:
            kw = books()
            for i in range(0, len(raws), per):
                normaliser(raws[i:i + per], now, **kw)
        return run

    base_s, decode_s = _best_of(baseline), _best_of(decoded)
    print(f"json.loads baseline      {N / base_s:12,.0f} messages/s")
    print(f"decode only              {N / decode_s:12,.0f} messages/s")
    rows = [("scalar (reference), 1 msg/call", scalar),
            ("pipeline path, 1 msg/call", per_message(BatchNormaliser())),
            ("numpy, 1 msg/call", per_message(BatchNormaliser(min_batch=0))),
            ("numpy, 10 msgs/call", batched(10)),
            ("numpy, 100 msgs/call", batched(100)),
            ("numpy, 1000 msgs/call", batched(1000))]
    scalar_s = 0.0
    for name, fn in rows:
        spent = _best_of(fn)
        scalar_s = scalar_s or spent
        print(f"normalise+qc {name:31} {N / spent:9,.0f} messages/s ({scalar_s / spent:.2f}x the scalar path); "
              f"decode+normalise+qc {N / (decode_s + spent):7,.0f} messages/s "
              f"({(decode_s + spent) / base_s:.1f}x the baseline's time)")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark named on the command line (default: all of them) and print the closing table; return
    the benchmarks' results by name."""
    cli = argparse.ArgumentParser(prog="python -m bench", description="aqnet's benchmarks (`make bench`)")
    cli.add_argument("which", nargs="?", default="all",
                     choices=("all", "ingest", "ingest-e2e", "modbus", "averages", "sim-speed", "soak"),
                     help="the benchmark to run (default: all)")
    cli.add_argument("--json", type=Path, default=None, help="also write the closing table as JSON to this file")
    ingest_e2e.add_options(cli.add_argument_group("ingest-e2e options"))
    modbus.add_options(cli.add_argument_group("modbus options"))
    averages.add_options(cli.add_argument_group("averages options"))
    sim_speed.add_options(cli.add_argument_group("sim-speed options"))
    soak.add_options(cli.add_argument_group("soak options (and --rate, --publishers)"), shared=False)
    opts = cli.parse_args(argv)
    results: dict[str, Any] = {}
    if opts.which == "soak":  # half an hour by default: only when asked for by name (`make soak`)
        print("soak (simulated network + synthetic load)")
        results["soak"] = soak.main(options=opts)
        return results
    if opts.which in ("all", "ingest"):
        print("ingest")
        run_ingest()
    if opts.which in ("all", "ingest-e2e"):
        print("ingest end to end (MQTT → aqnet → TimescaleDB)")
        results["ingest-e2e"] = ingest_e2e.main(options=opts)
    if opts.which in ("all", "modbus"):
        print("modbus polling")
        results["modbus"] = modbus.main(options=opts)
    if opts.which in ("all", "averages"):
        print("averages and indices (one scheduler tick)")
        results["averages"] = averages.main(options=opts)
    if opts.which == "sim-speed":  # minutes of whole-stack runs: only when asked for by name
        print("simulated-time speed (aqnet up --speed X)")
        results["sim-speed"] = sim_speed.main(options=opts)
    rows: dict[str, summary.Row] = {}
    if "ingest-e2e" in results:
        rows.update(zip(("ingest", "latency", "where"), summary.ingest_rows(results["ingest-e2e"]), strict=True))
    if "modbus" in results:
        rows["modbus"] = summary.modbus_row(results["modbus"])
    if results.get("averages"):
        rows["averages"] = summary.averages_row(results["averages"])
    if not rows:
        return results
    for line in profiles.missed(opts, rows):
        print(line)
    print(f"\nissue 19: every figure against its baseline of the same run ({os.cpu_count()} CPUs; goals for 2 cores, "
          "reported, not a gate)")
    for line in summary.table(list(rows.values())):
        print(line)
    if opts.json is not None:
        args = list(sys.argv[1:] if argv is None else argv)
        doc = summary.to_json(list(rows.values()), cpus=os.cpu_count(), argv=args)
        opts.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"written {opts.json}")
    return results


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # like Ctrl-C: the benchmark's `finally` stops what it started


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    main()
