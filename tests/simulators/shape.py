"""Statistical shape checks for the simulated city, with named windows and effect sizes (used by the tests).

Each check takes a signal `(sensor_id, variable, t) -> value` (in the reported unit) and returns a `Check`
whose `ok` says whether the shape is there and whose `effect` is the measured effect size, so the tests can run
the same checks on `CitySignals` (which must pass) and on a flat signal (which must fail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import mean
from zoneinfo import ZoneInfo

from simulators.signals import Episode, Position

Signal = Callable[[str, str, datetime], float]

BOGOTA = ZoneInfo("America/Bogota")
MONDAY = datetime(2026, 3, 2, tzinfo=BOGOTA)  #: the week the checks look at starts on this Monday, local time
WEEKDAYS = range(5)
SUNDAY = (6,)
MMHG_TO_HPA = 1.33322387415  # conversions.json constants.mmHg_to_hPa


@dataclass(frozen=True)
class Window:
    """A named window of local time of day, [start_h, end_h)."""

    name: str
    start_h: float
    end_h: float

    def instants(self, days: Iterable[int], step_min: int = 10) -> list[datetime]:
        """Every `step_min` minutes inside the window, on the given days (0 = MONDAY) of the week."""
        out = []
        for day in days:
            t = MONDAY + timedelta(days=day, hours=self.start_h)
            end = MONDAY + timedelta(days=day, hours=self.end_h)
            while t < end:
                out.append(t)
                t += timedelta(minutes=step_min)
        return out


MORNING_RUSH = Window("morning rush 07–09 h", 7, 9)
NIGHT = Window("night 02–04 h", 2, 4)
AFTERNOON = Window("afternoon 12–16 h", 12, 16)
TIDE_HIGH = (Window("tide high 09:30–10:30 h", 9.5, 10.5), Window("tide high 21:30–22:30 h", 21.5, 22.5))
TIDE_LOW = (Window("tide low 03:30–04:30 h", 3.5, 4.5), Window("tide low 15:30–16:30 h", 15.5, 16.5))


@dataclass(frozen=True)
class Check:
    """The outcome of one shape check: whether it holds and the effect size measured."""

    name: str
    ok: bool
    effect: float


def _mean(signal: Signal, sensors: Sequence[str], variable: str, instants: Iterable[datetime]) -> float:
    times = list(instants)
    return mean(signal(s, variable, t) for s in sensors for t in times)


def rush_hour(signal: Signal, sensors: Sequence[str], variable: str = "no2", *, min_ratio: float = 1.5) -> Check:
    """Weekday mean at 07–09 h local above `min_ratio` × its 02–04 h mean."""
    ratio = (_mean(signal, sensors, variable, MORNING_RUSH.instants(WEEKDAYS))
             / _mean(signal, sensors, variable, NIGHT.instants(WEEKDAYS)))
    return Check(f"{variable} {MORNING_RUSH.name} / {NIGHT.name}", ratio > min_ratio, ratio)


def ozone_afternoon_peak(signal: Signal, sensors: Sequence[str], *, min_ratio: float = 2.0) -> Check:
    """O3's hourly-mean maximum over a week falls in 12–16 h local, above `min_ratio` × its 02–04 h mean."""
    hourly = [_mean(signal, sensors, "o3", Window(f"{h} h", h, h + 1).instants(range(7), 20)) for h in range(24)]
    peak_hour = max(range(24), key=lambda h: (hourly[h], -h))  # ties: the earliest hour
    ratio = max(hourly) / _mean(signal, sensors, "o3", NIGHT.instants(range(7)))
    in_afternoon = AFTERNOON.start_h <= peak_hour < AFTERNOON.end_h
    return Check(f"o3 peak hour {peak_hour} h in {AFTERNOON.name}, peak / night", in_afternoon and ratio > min_ratio,
                 ratio)


def weekday_over_sunday(signal: Signal, sensors: Sequence[str], variable: str = "no2", *,
                        min_ratio: float = 1.25, weeks: int = 4) -> Check:
    """Traffic: the weekday 07–09 h mean above `min_ratio` × Sunday's, over `weeks` weeks."""
    days = range(7 * weeks)
    ratio = (_mean(signal, sensors, variable, MORNING_RUSH.instants(d for d in days if d % 7 in WEEKDAYS))
             / _mean(signal, sensors, variable, MORNING_RUSH.instants(d for d in days if d % 7 in SUNDAY)))
    return Check(f"{variable} weekday / Sunday {MORNING_RUSH.name}", ratio > min_ratio, ratio)


def pressure_at_altitude(signal: Signal, sensors: Sequence[str], *, centre_hpa: float = 752.0,
                         tolerance_hpa: float = 5.0, min_tide_hpa: float = 1.0) -> Check:
    """Station pressure (reported in mmHg) within `tolerance_hpa` of 752 hPa, with a semidiurnal tide: highs
    near 10 h and 22 h above lows near 04 h and 16 h by more than `min_tide_hpa`. The effect is the tide."""
    week = [t for w in (Window("day", 0, 24),) for t in w.instants(range(7), 30)]
    level = _mean(signal, sensors, "pressure", week) * MMHG_TO_HPA
    high = _mean(signal, sensors, "pressure", [t for w in TIDE_HIGH for t in w.instants(range(7))])
    low = _mean(signal, sensors, "pressure", [t for w in TIDE_LOW for t in w.instants(range(7))])
    tide = (high - low) * MMHG_TO_HPA
    return Check(f"pressure {level:.1f} hPa, tide {tide:.2f} hPa",
                 abs(level - centre_hpa) <= tolerance_hpa and tide > min_tide_hpa, tide)


def episode_confined(signal: Signal, baseline: Signal, episode: Episode, positions: dict[str, Position], *,
                     min_fraction: float = 0.8) -> Check:
    """The episode raises its variable inside its window and area by at least `min_fraction` of its factor's
    excess (mid-window, at full strength), and changes nothing outside the window or the area."""
    inside = sorted(s for s, p in positions.items() if episode.covers(p))
    outside = sorted(s for s, p in positions.items() if not episode.covers(p))
    span = episode.end - episode.start
    middle = [episode.start + span * k / 8 for k in range(3, 6)]
    before_after = [episode.start - timedelta(hours=h) for h in (1, 6)] + [episode.end + timedelta(hours=h)
                                                                            for h in (0, 1, 6)]
    v = episode.variable
    raised = (_mean(signal, inside, v, middle) / _mean(baseline, inside, v, middle)) if inside else 1.0
    untouched = [signal(s, v, t) == baseline(s, v, t) for s in outside for t in middle]
    untouched += [signal(s, v, t) == baseline(s, v, t) for s in inside for t in before_after]
    want = 1 + min_fraction * (episode.factor - 1)
    return Check(f"{v} episode inside / baseline", bool(inside) and raised >= want and all(untouched), raised)


def humid_over_read(lowcost: Signal, reference: Signal, sensors: Sequence[str], *, min_ratio: float = 1.3) -> Check:
    """Low-cost PM2.5 over the reference in humid air (RH ≥ 85 %) above `min_ratio`, and above its dry-air ratio
    (RH ≤ 65 %)."""
    humid, dry = [], []
    for s in sensors:
        for t in Window("day", 0, 24).instants(range(7), 30):
            rh = reference(s, "relativehumidity", t)
            ratio = lowcost(s, "pm25", t) / reference(s, "pm25", t)
            if rh >= 85:
                humid.append(ratio)
            elif rh <= 65:
                dry.append(ratio)
    h, d = (mean(humid) if humid else 1.0), (mean(dry) if dry else 1.0)
    return Check("low-cost / reference pm25 in humid air", h > min_ratio and h > d, h)
