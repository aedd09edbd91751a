"""The averaging job pauses Python's cyclic garbage collector for a run and gives it back as it found it."""

from __future__ import annotations

import gc

import pytest

from alerts.averaging.job import _collector_paused


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_during_a_run_and_restored_after_it(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with _collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), _collector_paused():
            raise RuntimeError("a failed run")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
