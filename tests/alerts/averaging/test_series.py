"""The window lists of `alerts.averaging.series` against their plain definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.averaging.series import rolling_windows


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-30, 30)), max_size=40), st.sampled_from([1, 8, 24]),
       st.integers(-30, 60))
def test_rolling_windows_are_the_distinct_windows_holding_each_hour(hours: list[tuple[int, int]], n: int,
                                                                     last_h: int) -> None:
    """Every window of n hours ending 0 … n-1 h after a written hour and at or before `last`, once, sorted by
    series then end (the expansion of every hour into its n windows, filtered and deduplicated)."""
    p = np.array([h[0] for h in hours], dtype=np.int64)
    e = np.array([h[1] * 3600.0 for h in hours])
    last = last_h * 3600.0
    want = sorted({(s, t + k * 3600.0) for s, t in zip(p.tolist(), e.tolist(), strict=True) for k in range(n)
                   if t + k * 3600.0 <= last})
    got_p, got_e = rolling_windows(p, e, n, last)
    assert list(zip(got_p.tolist(), got_e.tolist(), strict=True)) == want
