"""ingest/colocation.py: distances and the choice of a sensor's co-located reference station."""

from __future__ import annotations

import pytest

from ingest.colocation import Site, co_located_reference, distance_m

MS = Site("MS01", "microsensor", 4.7100, -74.0300, frozenset({"pm25"}))
NEAR = Site("USQ", "station", 4.7101, -74.0300, frozenset({"pm25", "no2"}))  # ~11 m north
FAR = Site("CSE", "station", 4.7200, -74.0300, frozenset({"pm25"}))  # ~1.1 km north
NO_PM = Site("TUN", "station", 4.71001, -74.0300, frozenset({"no2"}))  # nearer, but no pm25


def test_distance_of_a_thousandth_of_a_degree_of_latitude() -> None:
    # 0.001° of a great circle of radius 6 371 008.8 m is 111.19 m
    assert distance_m(4.71, -74.03, 4.711, -74.03) == pytest.approx(111.195, abs=0.01)


def test_nearest_station_of_the_variable_within_the_distance() -> None:
    found = co_located_reference(MS, [FAR, NEAR, NO_PM, MS], "pm25", 20.0)
    assert found is not None and found[0] is NEAR and found[1] == pytest.approx(11.12, abs=0.01)
    assert co_located_reference(MS, [FAR, NO_PM], "pm25", 20.0) is None
    found_far = co_located_reference(MS, [FAR], "pm25", 2000.0)
    assert found_far is not None and found_far[0] is FAR
    assert co_located_reference(NEAR, [NEAR], "pm25", 1e9) is None  # never its own reference


def test_bad_distance_is_refused() -> None:
    with pytest.raises(ValueError, match="max_distance_m"):
        co_located_reference(MS, [NEAR], "pm25", float("nan"))
