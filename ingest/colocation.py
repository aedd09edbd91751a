"""Co-location of a microsensor with a reference station: which station is its reference. Pure (ingest stage).

A sensor's reference for a variable is the station (`kind` station) measuring that variable nearest to it, when
within `max_distance_m` (great-circle distance between the registry's coordinates; the setting
`health.colocation_max_distance_m`). A station is never its own reference. Ties go to the lower station id.
The fit of a proposed calibration from the pairs is `ingest.colocation_fit`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["EARTH_RADIUS_M", "Site", "co_located_reference", "distance_m"]

#: mean Earth radius, m (IUGG mean radius R1, as ingest.normalise uses for the nearest station)
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Site:
    """A sensor's place in the network and what it measures."""

    sensor_id: str
    kind: str  #: station or microsensor
    lat: float
    lon: float
    variables: frozenset[str]


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine on a sphere: plenty within a city)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def co_located_reference(sensor: Site, sites: Iterable[Site], variable: str, max_distance_m: float
                         ) -> tuple[Site, float] | None:
    """The station measuring `variable` nearest to `sensor` within `max_distance_m`, with its distance; or None."""
    if not max_distance_m >= 0:  # NaN too; math.inf: the nearest wherever it is
        raise ValueError(f"max_distance_m: expected a distance ≥ 0, got {max_distance_m}")
    best: tuple[float, str, Site] | None = None
    for site in sites:
        if site.kind != "station" or site.sensor_id == sensor.sensor_id or variable not in site.variables:
            continue
        d = distance_m(sensor.lat, sensor.lon, site.lat, site.lon)
        if d <= max_distance_m and (best is None or (d, site.sensor_id) < best[:2]):
            best = (d, site.sensor_id, site)
    return None if best is None else (best[2], best[0])
